/**
 * The sidecar's work-done progress (proof search) as a notification with a Cancel button.
 * vscode-languageclient shows server-created progress in the status bar, where it cannot be
 * cancelled; this replaces its `window/workDoneProgress/create` handler with one that shows
 * each progress as a cancellable notification and sends `window/workDoneProgress/cancel`.
 */
import * as vscode from 'vscode';
import {
  LanguageClient,
  WorkDoneProgress,
  WorkDoneProgressBegin,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateRequest,
  WorkDoneProgressReport,
} from 'vscode-languageclient/node';

export function showProgressAsNotifications(client: LanguageClient): vscode.Disposable {
  return client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
    let shown: vscode.Progress<{ message?: string; increment?: number }> | undefined;
    let percent = 0;
    let finish: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const report = (value: WorkDoneProgressBegin | WorkDoneProgressReport) => {
      const increment = value.percentage !== undefined ? Math.max(0, value.percentage - percent) : undefined;
      if (value.percentage !== undefined) percent = Math.max(percent, value.percentage);
      shown?.report({ message: value.message, increment });
    };
    const listening = client.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind === 'begin') {
        void vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: value.title, cancellable: value.cancellable === true },
          (progress, cancel) => {
            shown = progress;
            cancel.onCancellationRequested(() => {
              void client.sendNotification(WorkDoneProgressCancelNotification.type, { token });
            });
            report(value);
            return finished;
          },
        );
      } else if (value.kind === 'report') {
        report(value);
      } else {
        listening.dispose();
        finish();
      }
    });
  });
}
