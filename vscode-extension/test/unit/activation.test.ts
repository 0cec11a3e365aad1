// Activation wiring against a mocked `vscode` and a recording language client.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeEach, test } from 'node:test';
import type * as code from 'vscode';
import { CloseAction, resetClients, script } from './fake-languageclient/node';
import {
  activate,
  COMMANDS,
  deactivate,
  describeProve,
  FINE_TUNE_NEEDS,
  FINE_TUNE_TASK,
  GOAL_STATE,
  STATUS_REQUEST,
} from '../../src/extension';
import * as vscode from './vscode-mock';
import { changeConfiguration, ProcessExecution, recorded, resetMock, TaskRevealKind, TaskScope } from './vscode-mock';

const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
const SERVER = process.execPath; // any executable: the fake client starts no process
const OTHER = '/bin/sh';

function context() {
  return { subscriptions: [] as { dispose(): void }[], extension: { packageJSON: manifest } } as unknown as code.ExtensionContext;
}

function status(checking: boolean) {
  return { model: 'm.gguf', lean: { found: checking, checking }, errors: [] };
}

const statusItem = () => recorded.statusItems.find((i) => i.id === 'segpilot.status');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const lastClient = (): any => script.clients[script.clients.length - 1];

beforeEach(async () => {
  await deactivate();
  resetMock();
  resetClients();
  recorded.settings.set('segpilot.server.command', [SERVER, 'serve']);
  script.answers.set(STATUS_REQUEST, () => status(true));
});

test('activation registers every contributed command and starts the sidecar on lean4', async () => {
  await activate(context());
  for (const { command } of manifest.contributes.commands) assert.ok(recorded.commands.has(command), command);
  assert.deepEqual(Object.values(COMMANDS).sort(), manifest.contributes.commands.map((c: { command: string }) => c.command).sort());
  const client = lastClient();
  assert.equal(client.serverOptions.command, SERVER);
  assert.deepEqual(client.serverOptions.args, ['serve']);
  assert.deepEqual(client.clientOptions.documentSelector, [{ language: 'lean4' }]);
  assert.equal(statusItem()?.command, COMMANDS.showStatus);
  assert.match(statusItem()?.text ?? '', /segpilot: ready/);
});

test('without Lean the status bar says unchecked', async () => {
  script.answers.set(STATUS_REQUEST, () => status(false));
  await activate(context());
  assert.match(statusItem()?.text ?? '', /segpilot: unchecked/);
  assert.match(String(statusItem()?.tooltip), /unchecked: no Lean/);
});

test('user-set settings go to the sidecar at start and on change; server settings restart it', async () => {
  recorded.settings.set('segpilot.k', 8);
  await activate(context());
  const first = lastClient();
  assert.deepEqual(first.clientOptions.initializationOptions, { k: 8 });
  recorded.settings.set('segpilot.replCommand', ['python', 'fake.py']);
  await changeConfiguration(['segpilot.replCommand']);
  assert.deepEqual(first.notifications.at(-1), {
    method: 'workspace/didChangeConfiguration',
    params: { settings: { k: 8, replCommand: ['python', 'fake.py'] } },
  });
  assert.equal(script.clients.length, 1);
  recorded.settings.set('segpilot.server.command', [OTHER, 'serve']);
  await changeConfiguration(['segpilot.server.command']);
  assert.equal(first.stopped, 1);
  assert.equal(script.clients.length, 2);
  assert.equal(lastClient().serverOptions.command, OTHER);
});

test('a missing sidecar gives one notification with the fix, not one per change', async () => {
  recorded.settings.delete('segpilot.server.command');
  recorded.settings.set('segpilot.server.pythonPath', '');
  await activate(context());
  assert.equal(script.clients.length, 0);
  await changeConfiguration(['segpilot.k']);
  await changeConfiguration(['segpilot.maxItems']);
  assert.equal(recorded.errors.length, 1, recorded.errors.join('\n'));
  assert.match(recorded.errors[0], /not found.*pip install segpilot/s);
  assert.match(statusItem()?.text ?? '', /segpilot: error/);
});

test('a configured command that does not exist is reported once, without starting a client', async () => {
  recorded.settings.set('segpilot.server.command', ['/nonexistent/segpilot', 'serve']);
  await activate(context());
  await changeConfiguration(['segpilot.k']);
  assert.equal(script.clients.length, 0);
  assert.equal(recorded.errors.length, 1);
  assert.match(recorded.errors[0], /\/nonexistent\/segpilot \(from setting\) does not exist/);
});

test('a failing code action command says why; a failing accept notice is only logged', async () => {
  await activate(context());
  const { executeCommand } = lastClient().clientOptions.middleware;
  const fail = async () => {
    throw new Error('the position is not inside a tactic proof');
  };
  assert.equal(await executeCommand('segpilot.insertSegment', [{}], fail), undefined);
  assert.equal(await executeCommand('segpilot.suggestionAccepted', [{ checked: true, outcome: 'closed' }], fail), undefined);
  assert.deepEqual(recorded.errors, ['segpilot: the position is not inside a tactic proof']);
  assert.match(recorded.outputs[0].lines.join('\n'), /suggestion accepted \(checked: closed\)/);
});

test('a sidecar that fails to start is reported once, not restarted, and a new command line is reported anew', async () => {
  script.startError = new Error('spawn failed: initialize refused');
  await activate(context());
  assert.equal(recorded.errors.length, 1);
  assert.match(recorded.errors[0], /did not start: Error: spawn failed/);
  assert.match(statusItem()?.text ?? '', /segpilot: error/);
  const { closed } = lastClient().clientOptions.errorHandler;
  assert.equal((await closed()).action, CloseAction.DoNotRestart);
  assert.equal(recorded.errors.length, 1);
  recorded.settings.set('segpilot.server.command', [OTHER, 'serve']);
  await changeConfiguration(['segpilot.server.command']);
  assert.equal(recorded.errors.length, 2);
});

test('a crashing sidecar is restarted a few times, then left down with one message', async () => {
  await activate(context());
  const { closed } = lastClient().clientOptions.errorHandler;
  const actions = [];
  for (let i = 0; i < 5; i += 1) actions.push((await closed()).action);
  assert.deepEqual(actions, [CloseAction.Restart, CloseAction.Restart, CloseAction.Restart, CloseAction.DoNotRestart, CloseAction.DoNotRestart]);
  assert.equal(recorded.errors.length, 1);
  assert.match(recorded.errors[0], /stopped 4 times/);
  assert.match(statusItem()?.text ?? '', /segpilot: error/);
});

test('fine-tune runs segpilot finetune on the project in a terminal, with the REPL command given to the sidecar', async () => {
  recorded.folders.push('/');
  recorded.settings.set('segpilot.server.command', [SERVER, '-m', 'segpilot', 'serve', '--log-file', '/tmp/l']);
  recorded.settings.set('segpilot.replCommand', ['lake', 'env', 'my repl']);
  await activate(context());
  await recorded.commands.get(COMMANDS.fineTune)!();
  assert.equal(recorded.tasks.length, 1);
  const [task] = recorded.tasks;
  assert.deepEqual(
    [task.name, task.source, task.definition, task.scope],
    ['fine-tune', 'segpilot', { type: FINE_TUNE_TASK }, TaskScope.Workspace],
  );
  assert.deepEqual(task.execution, new ProcessExecution(SERVER, ['-m', 'segpilot', 'finetune', '/', '--repl-command', "lake env 'my repl'"], { cwd: '/' }));
  assert.equal(task.presentationOptions.reveal, TaskRevealKind.Always);
});

test('a fine-tune task VS Code cannot start is one error message with the reason', async () => {
  recorded.folders.push('/');
  recorded.settings.set('segpilot.server.command', [SERVER, '-m', 'segpilot', 'serve']);
  vscode.tasks.failure = new Error('no task runner');
  await activate(context());
  await recorded.commands.get(COMMANDS.fineTune)!();
  assert.equal(recorded.tasks.length, 1);
  assert.deepEqual(recorded.errors, ['segpilot: could not start fine-tuning: no task runner']);
});

test('the fine-tune task type is the one the manifest contributes', () => {
  assert.deepEqual(manifest.contributes.taskDefinitions.map((d: { type: string }) => d.type), [FINE_TUNE_TASK]);
});

test('fine-tune without a way to run segpilot says what to set', async () => {
  recorded.folders.push('/');
  recorded.settings.set('segpilot.server.command', [SERVER, 'custom-wrapper']);
  await activate(context());
  await recorded.commands.get(COMMANDS.fineTune)!();
  assert.deepEqual(recorded.tasks, []);
  assert.deepEqual(recorded.errors.slice(-1), [FINE_TUNE_NEEDS]);
});

test('the status command shows the sidecar status in the log', async () => {
  await activate(context());
  await recorded.commands.get(COMMANDS.showStatus)!();
  const output = recorded.outputs[0];
  assert.ok(output.shown >= 1);
  assert.match(output.lines.join('\n'), /"checking": true/);
});

test('with the official Lean 4 extension, the goal goes to the sidecar before each inline request', async () => {
  const order: string[] = [];
  recorded.extensions.set('leanprover.lean4', {
    lean4EnabledFeatures: Promise.resolve({
      clientProvider: {
        getActiveClient: () => undefined,
        getClients: () => [
          {
            isRunning: () => true,
            getClientFolder: () => ({ scheme: 'file', fsPath: '/ws' }),
            sendRequest: async () => ({ rendered: '', goals: ['p q : Prop\n⊢ q ∧ p'] }),
          },
        ],
      },
    }),
  });
  await activate(context());
  const client = lastClient();
  const middleware = client.clientOptions.middleware;
  const document = { uri: vscode.Uri.file('/ws/Demo.lean'), version: 7, languageId: 'lean4' };
  const items = await middleware.provideInlineCompletionItems(document, new vscode.Position(15, 2), {}, {}, async () => {
    order.push(client.notifications.at(-1)?.method ?? 'none');
    return { items: [] };
  });
  assert.deepEqual(items, { items: [] });
  assert.deepEqual(order, [GOAL_STATE]);
  assert.deepEqual(client.notifications.at(-1)?.params, {
    uri: 'file:///ws/Demo.lean',
    version: 7,
    position: { line: 15, character: 2 },
    goals: ['p q : Prop\n⊢ q ∧ p'],
  });
});

test('with the official extension, the goal follows the cursor once it rests', async () => {
  recorded.extensions.set('leanprover.lean4', {
    lean4EnabledFeatures: Promise.resolve({
      clientProvider: {
        getActiveClient: () => undefined,
        getClients: () => [
          {
            isRunning: () => true,
            getClientFolder: () => ({ scheme: 'file', fsPath: '/ws' }),
            sendRequest: async (_method: string, params: { position: { line: number } }) => ({
              rendered: '',
              goals: params.position.line === 3 ? ['⊢ True'] : [],
            }),
          },
        ],
      },
    }),
  });
  await activate(context());
  const client = lastClient();
  const textEditor = { document: { uri: vscode.Uri.file('/ws/A.lean'), version: 2, languageId: 'lean4' } };
  for (const line of [1, 2, 3]) {
    for (const listener of recorded.selectionListeners) listener({ textEditor, selections: [{ active: new vscode.Position(line, 2) }] });
  }
  const deadline = Date.now() + 5000;
  const sent = () => client.notifications.filter((n: { method: string }) => n.method === GOAL_STATE);
  while (sent().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  // only the position where the cursor came to rest is asked about
  assert.deepEqual(sent().map((n: { params: unknown }) => n.params), [
    { uri: 'file:///ws/A.lean', version: 2, position: { line: 3, character: 2 }, goals: ['⊢ True'] },
  ]);
});

test('without the official extension, inline requests go on with no goal notification', async () => {
  await activate(context());
  const client = lastClient();
  const document = { uri: vscode.Uri.file('/ws/Demo.lean'), version: 1, languageId: 'lean4' };
  let called = 0;
  await client.clientOptions.middleware.provideInlineCompletionItems(document, new vscode.Position(1, 2), {}, {}, async () => {
    called += 1;
    return [];
  });
  assert.equal(called, 1);
  assert.equal(client.notifications.filter((n: { method: string }) => n.method === GOAL_STATE).length, 0);
  assert.match(recorded.outputs[0].lines.join('\n'), /goal bridge off \(the Lean 4 extension \(leanprover.lean4\) is not installed\)/);
});

test('the status bar says thinking while an inline request runs, then ready again', async () => {
  await activate(context());
  const client = lastClient();
  const document = { uri: vscode.Uri.file('/ws/A.lean'), version: 1, languageId: 'lean4' };
  let seen = '';
  await client.clientOptions.middleware.provideInlineCompletionItems(document, new vscode.Position(1, 2), {}, {}, async () => {
    seen = statusItem()?.text ?? '';
    return { items: [{ insertText: 'constructor' }] };
  });
  assert.match(seen, /segpilot: thinking/);
  assert.match(statusItem()?.text ?? '', /segpilot: ready/);
  assert.match(recorded.outputs[0].lines.join('\n'), /inline completion at A\.lean:2:3: 1 item\(s\)/);
});

test('prove at cursor sends the sidecar command with the position and reports the result', async () => {
  await activate(context());
  const client = lastClient();
  script.answers.set('workspace/executeCommand', () => ({ holes: 1, proved: 1, applied: true, results: [] }));
  (vscode.window as { activeTextEditor: unknown }).activeTextEditor = {
    document: { uri: vscode.Uri.file('/ws/A.lean'), languageId: 'lean4' },
    selection: { active: new vscode.Position(4, 2) },
  };
  try {
    await recorded.commands.get(COMMANDS.proveAtCursor)!();
  } finally {
    (vscode.window as { activeTextEditor: unknown }).activeTextEditor = undefined;
  }
  assert.deepEqual(client.requests.at(-1), {
    method: 'workspace/executeCommand',
    params: { command: 'segpilot.proveTheorem', arguments: [{ uri: 'file:///ws/A.lean', position: { line: 4, character: 2 } }] },
  });
  assert.deepEqual(recorded.infos, ['segpilot: proved 1 of 1 sorry(s).']);
});

test('prove results are described plainly', () => {
  assert.equal(describeProve({ holes: 0, proved: 0, applied: false }), 'segpilot: no sorry to prove here.');
  assert.equal(
    describeProve({ holes: 3, proved: 1, applied: false, changedMeanwhile: true, cancelled: true }),
    'segpilot: proved 1 of 3 sorry(s) (cancelled); not applied: the file changed meanwhile.',
  );
});

test("the sidecar's proof-search progress is a notification whose Cancel reaches the sidecar", async () => {
  await activate(context());
  const client = lastClient();
  const create = client.handlers.get('window/workDoneProgress/create');
  assert.ok(create, 'the create handler is ours');
  create({ token: 'p1' });
  const send = client.progress.get('p1');
  send({ kind: 'begin', title: 'segpilot: proving the theorem', cancellable: true, percentage: 0 });
  send({ kind: 'report', message: 'sorry 1 of 1 (line 2): 1 expansions', percentage: 40 });
  send({ kind: 'report', message: 'sorry 1 of 1 (line 2): 2 expansions', percentage: 70 });
  const shown = recorded.progress[0];
  assert.deepEqual(shown.options, { location: vscode.ProgressLocation.Notification, title: 'segpilot: proving the theorem', cancellable: true });
  assert.deepEqual(shown.reports.map((r) => r.increment), [0, 40, 30]);
  shown.cancel();
  assert.deepEqual(client.notifications.at(-1), { method: 'window/workDoneProgress/cancel', params: { token: 'p1' } });
  send({ kind: 'end', message: 'done' });
  await shown.done; // the notification closes when the sidecar ends the progress
  assert.equal(client.progress.has('p1'), false);
});

test('reload model runs the sidecar command and says which model; a stopped sidecar is started', async () => {
  await activate(context());
  const client = lastClient();
  script.answers.set('workspace/executeCommand', () => ({ model: '/m/new.gguf', lean: { checking: true } }));
  await recorded.commands.get(COMMANDS.reload)!();
  assert.deepEqual(client.requests.find((r: { method: string }) => r.method === 'workspace/executeCommand')?.params, {
    command: 'segpilot.reloadModel',
    arguments: [],
  });
  assert.deepEqual(recorded.infos, ['segpilot: model reloaded (/m/new.gguf).']);
  client.running = false;
  await recorded.commands.get(COMMANDS.reload)!();
  assert.equal(script.clients.length, 2, 'a new client was started');
  assert.match(statusItem()?.text ?? '', /segpilot: ready/);
});
