/**
 * segpilot for VS Code: starts `segpilot serve` through vscode-languageclient on Lean 4
 * files. Ghost text, code actions and the sidecar's commands come from the client's standard
 * features; this file adds what the sidecar cannot do alone: finding and restarting it,
 * settings, the goal bridge to the official Lean 4 extension, the status bar and commands.
 */
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { CrashBudget, Once } from './crashBudget';
import { GoalBridge } from './goalBridge';
import { LEAN4_EXTENSION_ID } from './leanApi';
import { showProgressAsNotifications } from './serverProgress';
import { commandExists, fineTuneCommand, Lookup, MISSING_FIX, projectRootOf, resolveServerCommand, ServerCommand } from './serverCommand';
import { ManifestProperty, sidecarKeys, sidecarSettings } from './settings';
import { Activity, Phase, phaseFromStatus, SidecarStatus, statusView } from './status';

export const LANGUAGE = 'lean4';
export const STATUS_REQUEST = 'segpilot/status';
export const GOAL_STATE = 'segpilot/goalState';
export const ACCEPTED = 'segpilot.suggestionAccepted';
/** The sidecar's commands (registered in VS Code by the client under these ids). */
export const SIDECAR = {
  proveTheorem: 'segpilot.proveTheorem',
  proveFile: 'segpilot.proveFile',
  reloadModel: 'segpilot.reloadModel',
} as const;
/** The extension's own commands (package.json `contributes.commands`). */
export const COMMANDS = {
  proveAtCursor: 'segpilot.proveAtCursor',
  proveThisFile: 'segpilot.proveThisFile',
  fineTune: 'segpilot.fineTune',
  reload: 'segpilot.reload',
  showLog: 'segpilot.showLog',
  showStatus: 'segpilot.showStatus',
} as const;
/** How long the cursor rests before its goal is sent to the sidecar. */
export const CURSOR_REST_MS = 250;
/** What an error says, without the `Error: ` that String() puts before an Error's message. */
function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The task type of *Fine-tune on this project* (contributed in package.json). */
export const FINE_TUNE_TASK = 'segpilot';
export const FINE_TUNE_NEEDS =
  'segpilot: fine-tuning runs `segpilot finetune`, found like the sidecar: set "segpilot.server.pythonPath", ' +
  'or a "segpilot.server.command" ending in `serve`.';

/** The language client, its own error pop-ups turned into log lines: the extension shows
 * one message per problem itself (a missing sidecar, repeated crashes, a failed command),
 * never one per keystroke. */
class QuietClient extends LanguageClient {
  override error(message: string, data?: unknown): void {
    super.error(message, data, false);
  }
}

class Sidecar implements vscode.Disposable {
  client: LanguageClient | undefined;
  private phase: Phase = 'starting';
  private detail = '';
  private readonly budget = new CrashBudget();
  private readonly missing: Once;
  private readonly crashedOut: Once;
  private readonly activity: Activity;
  private readonly bridge: GoalBridge;
  private readonly item: vscode.StatusBarItem;
  private stopping = false;
  /** Whether the client reached Running since it was last started (a failed start is
   * reported once by `start`, not retried). */
  private ranOnce = false;
  private progress: vscode.Disposable | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    readonly output: vscode.LogOutputChannel,
  ) {
    this.item = vscode.window.createStatusBarItem('segpilot.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'segpilot';
    this.item.command = COMMANDS.showStatus;
    this.item.show();
    this.missing = new Once((message) => this.notify(message, true));
    this.crashedOut = new Once((message) => this.notify(message, false));
    this.activity = new Activity((thinking) => this.render(thinking));
    this.bridge = new GoalBridge({
      exports: () => {
        const official = vscode.extensions.getExtension(LEAN4_EXTENSION_ID);
        if (!official) return undefined;
        return official.isActive ? official.exports : official.activate();
      },
      log: (line) => this.log(line),
    });
    this.render(false);
  }

  log(line: string): void {
    this.output.appendLine(`[segpilot] ${line}`);
  }

  private notify(message: string, settingsButton: boolean): void {
    const actions = settingsButton ? ['Open Settings', 'Show Log'] : ['Show Log'];
    void vscode.window.showErrorMessage(message, ...actions).then((choice) => {
      if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'segpilot.server');
      if (choice === 'Show Log') this.output.show(true);
    });
  }

  setPhase(phase: Phase, detail = ''): void {
    this.phase = phase;
    this.detail = detail;
    this.render(this.activity.busy);
  }

  private render(thinking: boolean): void {
    const shown = thinking && (this.phase === 'ready' || this.phase === 'unchecked') ? 'thinking' : this.phase;
    const view = statusView(shown, this.detail);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor = view.alarming ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  private settings(): Record<string, unknown> {
    const properties = (this.context.extension?.packageJSON?.contributes?.configuration?.properties ??
      {}) as Record<string, ManifestProperty>;
    const config = vscode.workspace.getConfiguration('segpilot');
    return sidecarSettings(sidecarKeys(properties), (key) => config.inspect(key));
  }

  private lookup(): Lookup {
    return {
      folders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
      pathVariable: process.env.PATH ?? '',
      platform: process.platform,
      isExecutable: (file) => {
        try {
          fs.accessSync(file, fs.constants.X_OK);
          return fs.statSync(file).isFile();
        } catch {
          return false;
        }
      },
    };
  }

  /** `segpilot finetune PROJECT` for the Lean project of `file` (or the first folder). */
  fineTuneLine(file: string | undefined): { line: string[]; cwd: string } | undefined {
    const found = this.command();
    const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
    const root = (file && projectRootOf(file, (p) => fs.existsSync(p), folders)) ?? folders[0];
    if (!found || !root || !commandExists(found.command, this.lookup())) return undefined;
    const repl = vscode.workspace.getConfiguration('segpilot').inspect<string[]>('replCommand');
    const given = repl?.workspaceFolderValue ?? repl?.workspaceValue ?? repl?.globalValue;
    const line = fineTuneCommand(found, root, given);
    return line ? { line, cwd: root } : undefined;
  }

  private command(): ServerCommand | undefined {
    const config = vscode.workspace.getConfiguration('segpilot.server');
    return resolveServerCommand(
      { command: config.get<string[]>('command') ?? [], pythonPath: config.get<string>('pythonPath') ?? '' },
      this.lookup(),
    );
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.ranOnce = false;
    const found = this.command();
    if (!found || !commandExists(found.command, this.lookup())) {
      const what = found ? `${found.command} (from ${found.origin}) does not exist` : 'segpilot was not found';
      this.setPhase('error', what);
      this.log(`${what}. ${MISSING_FIX}`);
      this.missing.show(`segpilot: the sidecar cannot start: ${what}. ${MISSING_FIX}`);
      return;
    }
    this.log(`starting ${found.command} ${found.args.join(' ')} (from ${found.origin})`);
    this.setPhase('starting');
    const serverOptions: ServerOptions = {
      // stdio without `transport`, which would append `--stdio` to a user's command line
      command: found.command,
      args: found.args,
      options: { cwd: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ language: LANGUAGE }],
      outputChannel: this.output,
      initializationOptions: this.settings(),
      initializationFailedHandler: (error) => {
        this.log(`the sidecar failed to initialize: ${String(error)}`);
        return false;
      },
      errorHandler: {
        error: (_error, _message, count) => ({ action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown }),
        closed: () => {
          if (this.stopping || !this.ranOnce) return { action: CloseAction.DoNotRestart, handled: true };
          if (this.budget.crashed()) {
            this.log(`the sidecar stopped; restarting it (${this.budget.recent} of ${this.budget.limit})`);
            this.setPhase('starting', 'restarting after a crash');
            return { action: CloseAction.Restart, handled: true };
          }
          this.setPhase('error', 'the sidecar crashed repeatedly');
          this.crashedOut.show(
            `segpilot: the sidecar stopped ${this.budget.recent} times in a few minutes and is not restarted. ` +
              'See "segpilot: Show log"; "segpilot: Reload model" starts it again.',
          );
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          this.activity.begin();
          try {
            await this.sendGoals(document, position);
            const result = await next(document, position, context, token);
            const items = Array.isArray(result) ? result : (result?.items ?? []);
            const where = `${document.uri.path.split('/').pop()}:${position.line + 1}:${position.character + 1}`;
            this.log(`inline completion at ${where}: ${items.length} item(s)`);
            return result;
          } finally {
            this.activity.end();
          }
        },
        executeCommand: async (command, args, next) => {
          if (command === ACCEPTED) {
            const info = (args[0] ?? {}) as { checked?: boolean; outcome?: string | null };
            this.log(`suggestion accepted (${info.checked ? `checked: ${info.outcome}` : 'unchecked'})`);
          }
          try {
            return await next(command, args);
          } catch (err) {
            // A command the user chose (a code action) says why it failed; the notice of an
            // accepted suggestion is background work and only logged.
            const message = errorText(err);
            this.log(`${command} failed: ${message}`);
            if (command !== ACCEPTED) void vscode.window.showErrorMessage(`segpilot: ${message}`);
            return undefined;
          }
        },
      },
    };
    const client = new QuietClient('segpilot', 'segpilot', serverOptions, clientOptions);
    this.client = client;
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        this.ranOnce = true;
        void this.refresh();
      }
      if (event.newState === State.Stopped && !this.stopping && this.phase !== 'error') this.setPhase('starting');
    });
    try {
      await client.start();
    } catch (err) {
      this.setPhase('error', String(err));
      this.log(`the sidecar did not start: ${String(err)}`);
      this.missing.show(`segpilot: the sidecar (${found.command}) did not start: ${String(err)}. ${MISSING_FIX}`);
      return;
    }
    this.missing.reset();
    this.progress?.dispose();
    this.progress = showProgressAsNotifications(client);
    await this.refresh();
  }

  /** Tell the sidecar the goal at the cursor when the cursor rests somewhere new (with the
   * official Lean 4 extension only): a drop in the goal count starts its prefetch. */
  followCursor(): vscode.Disposable {
    let timer: NodeJS.Timeout | undefined;
    const listening = vscode.window.onDidChangeTextEditorSelection((event) => {
      const document = event.textEditor.document;
      if (document.languageId !== LANGUAGE || !this.bridge.usable || !this.client?.isRunning()) return;
      clearTimeout(timer);
      const at = event.selections[0]?.active;
      if (at) timer = setTimeout(() => void this.sendGoals(document, at), CURSOR_REST_MS);
    });
    return { dispose: () => (clearTimeout(timer), listening.dispose()) };
  }

  /** The goal the official Lean 4 extension shows at the cursor, told to the sidecar. */
  private async sendGoals(document: vscode.TextDocument, position: vscode.Position): Promise<void> {
    const client = this.client;
    if (!client || !this.bridge.usable || document.uri.scheme !== 'file') return;
    const uri = client.code2ProtocolConverter.asUri(document.uri);
    const at = { line: position.line, character: position.character };
    const goals = await this.bridge.goalsAt(document.uri.fsPath, uri, at);
    if (goals === undefined) return;
    await client.sendNotification(GOAL_STATE, { uri, version: document.version, position: at, goals });
  }

  /** Ask the sidecar whether Lean checks suggestions, for the status bar. */
  async refresh(): Promise<SidecarStatus | undefined> {
    const client = this.client;
    if (!client || !client.isRunning()) return undefined;
    try {
      const status = (await client.sendRequest(STATUS_REQUEST, {})) as SidecarStatus;
      const errors = status.errors ?? [];
      this.setPhase(phaseFromStatus(status), errors.length ? `last error: ${errors[errors.length - 1]}` : '');
      return status;
    } catch (err) {
      this.setPhase('error', String(err));
      return undefined;
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    this.stopping = true;
    try {
      await client.stop(5000);
    } catch (err) {
      this.log(`stopping the sidecar: ${String(err)}`);
    }
    this.setPhase('stopped');
  }

  async configurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!event.affectsConfiguration('segpilot')) return;
    if (event.affectsConfiguration('segpilot.server')) {
      this.log('segpilot.server settings changed: restarting the sidecar');
      this.missing.reset(); // a new command line: its problem, if any, is a new one
      await this.restart();
      return;
    }
    const client = this.client;
    if (!client || !client.isRunning()) return;
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings: this.settings() });
    await this.refresh();
  }

  /** Run one of the sidecar's commands; undefined (and a message) when it cannot. */
  async execute(command: string, args: unknown[]): Promise<unknown> {
    const client = this.client;
    if (!client || !client.isRunning()) {
      void vscode.window.showErrorMessage('segpilot: the sidecar is not running (see "segpilot: Show log").');
      return undefined;
    }
    try {
      return await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
    } catch (err) {
      void vscode.window.showErrorMessage(`segpilot: ${errorText(err)}`);
      return undefined;
    }
  }

  dispose(): void {
    void this.stop();
    this.item.dispose();
  }
}

interface ProveResult {
  holes: number;
  proved: number;
  applied: boolean;
  changedMeanwhile?: boolean;
  cancelled?: boolean;
}

export function describeProve(result: ProveResult): string {
  if (result.holes === 0) return 'segpilot: no sorry to prove here.';
  let text = `segpilot: proved ${result.proved} of ${result.holes} sorry(s)`;
  if (result.cancelled) text += ' (cancelled)';
  if (result.proved > 0 && !result.applied) {
    text += result.changedMeanwhile ? '; not applied: the file changed meanwhile' : '; not applied';
  }
  return `${text}.`;
}

let sidecar: Sidecar | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('segpilot', { log: true });
  const current = new Sidecar(context, output);
  sidecar = current;
  const leanEditor = (): vscode.TextEditor | undefined => {
    const editor = vscode.window.activeTextEditor;
    if (editor?.document.languageId === LANGUAGE) return editor;
    void vscode.window.showInformationMessage('segpilot: open a Lean 4 file first.');
    return undefined;
  };
  const prove = async (command: string, editor: vscode.TextEditor, position?: vscode.Position) => {
    const uri = current.client?.code2ProtocolConverter.asUri(editor.document.uri) ?? editor.document.uri.toString();
    const arg = position ? { uri, position: { line: position.line, character: position.character } } : { uri };
    const result = (await current.execute(command, [arg])) as ProveResult | undefined;
    if (result) void vscode.window.showInformationMessage(describeProve(result));
  };
  context.subscriptions.push(
    output,
    current,
    vscode.workspace.onDidChangeConfiguration((event) => current.configurationChanged(event)),
    current.followCursor(),
    vscode.commands.registerCommand(COMMANDS.showLog, () => output.show(true)),
    vscode.commands.registerCommand(COMMANDS.showStatus, async () => {
      const status = await current.refresh();
      output.appendLine(`[segpilot] status: ${status ? JSON.stringify(status, null, 2) : 'the sidecar is not running'}`);
      output.show(true);
    }),
    vscode.commands.registerCommand(COMMANDS.fineTune, async () => {
      const editor = vscode.window.activeTextEditor;
      const file = editor?.document.uri.scheme === 'file' ? editor.document.uri.fsPath : undefined;
      const run = current.fineTuneLine(file);
      if (!run) {
        void vscode.window.showErrorMessage(FINE_TUNE_NEEDS);
        return;
      }
      current.log(`fine-tune: ${run.line.join(' ')} (in ${run.cwd})`);
      // A task, not createTerminal: a terminal whose process is the command closes the moment
      // it exits, and the run's closing report (or its error) with it; a task's stays open.
      const task = new vscode.Task(
        { type: FINE_TUNE_TASK },
        vscode.TaskScope.Workspace,
        'fine-tune',
        'segpilot',
        new vscode.ProcessExecution(run.line[0], run.line.slice(1), { cwd: run.cwd }),
      );
      task.presentationOptions = {
        reveal: vscode.TaskRevealKind.Always,
        panel: vscode.TaskPanelKind.Dedicated,
        clear: true,
      };
      try {
        await vscode.tasks.executeTask(task);
      } catch (err) {
        current.log(`fine-tune did not start: ${errorText(err)}`);
        void vscode.window.showErrorMessage(`segpilot: could not start fine-tuning: ${errorText(err)}`);
      }
    }),
    vscode.commands.registerCommand(COMMANDS.reload, async () => {
      if (!current.client?.isRunning()) {
        await current.restart();
        return;
      }
      const status = (await current.execute(SIDECAR.reloadModel, [])) as SidecarStatus | undefined;
      if (status) void vscode.window.showInformationMessage(`segpilot: model reloaded (${status.model ?? 'default'}).`);
      await current.refresh();
    }),
    vscode.commands.registerCommand(COMMANDS.proveAtCursor, async () => {
      const editor = leanEditor();
      if (editor) await prove(SIDECAR.proveTheorem, editor, editor.selection.active);
    }),
    vscode.commands.registerCommand(COMMANDS.proveThisFile, async () => {
      const editor = leanEditor();
      if (editor) await prove(SIDECAR.proveFile, editor);
    }),
  );
  await current.start();
}

export async function deactivate(): Promise<void> {
  await sidecar?.stop();
  sidecar = undefined;
}
