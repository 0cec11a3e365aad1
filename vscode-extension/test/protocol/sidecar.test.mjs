// The contract between the extension and the sidecar: a vscode-jsonrpc client against the
// real `segpilot serve` (default model; Lean checking through the fake REPL's elaborator),
// checking every method name and payload shape the extension relies on.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';

const EXTENSION = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const REPO = path.resolve(EXTENSION, '..');
const PYTHON = process.env.SEGPILOT_PYTHON || path.join(REPO, '.venv', 'bin', 'python');
const FAKE_REPL = path.join(REPO, 'tests', 'fakes', 'fake_repl.py');
const manifest = JSON.parse(fs.readFileSync(path.join(EXTENSION, 'package.json'), 'utf8'));
const SIDECAR_COMMANDS = ['segpilot.suggestionAccepted', 'segpilot.insertSegment', 'segpilot.proveTheorem', 'segpilot.proveFile', 'segpilot.reloadModel'];

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

describe('segpilot serve, as the extension speaks to it', { timeout: 600_000 }, () => {
  let dir, child, connection, uri, text, demoUri, exited;
  const stderr = [];
  const edits = [];
  const progress = [];
  const logs = [];
  const fakeRepl = () => [PYTHON, FAKE_REPL, path.join(dir, 'graph.json'), '--elaborate', '--unrecorded-tactics', 'error'];
  const request = (method, params, ms = 180_000) => withTimeout(connection.sendRequest(method, params), ms, method);
  const status = () => request('segpilot/status', {});
  const andSwapLine = () => 1; // the `  sorry` under `theorem and_swap_e2e ... := by`

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segpilot-protocol-'));
    fs.writeFileSync(path.join(dir, 'graph.json'), JSON.stringify({ about: 'protocol test', commands: [], tactics: [] }));
    for (const name of ['lakefile.toml', 'lean-toolchain', 'Demo.lean']) {
      fs.copyFileSync(path.join(REPO, 'lean_project', name), path.join(dir, name));
    }
    fs.copyFileSync(path.join(EXTENSION, 'test', 'fixtures', 'AndSwap.lean'), path.join(dir, 'AndSwap.lean'));
    text = fs.readFileSync(path.join(dir, 'AndSwap.lean'), 'utf8');
    uri = pathToFileURL(path.join(dir, 'AndSwap.lean')).href;
    demoUri = pathToFileURL(path.join(dir, 'Demo.lean')).href;
    child = spawn(PYTHON, ['-m', 'segpilot', 'serve'], {
      cwd: dir,
      env: { ...process.env, SEGPILOT_HOME: path.join(dir, 'home') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.stderr.on('data', (chunk) => stderr.push(String(chunk)));
    connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
    connection.onRequest('workspace/applyEdit', (params) => {
      edits.push(params);
      return { applied: true };
    });
    connection.onRequest('window/workDoneProgress/create', (params) => {
      progress.push({ create: params.token });
      return null;
    });
    connection.onNotification('$/progress', (params) => progress.push(params));
    connection.onNotification('window/logMessage', (params) => logs.push(params.message));
    connection.onNotification('window/showMessage', (params) => logs.push(`shown: ${params.message}`));
    connection.listen();
  });

  after(async () => {
    connection?.dispose();
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('initialize: the capabilities and commands the extension uses', async () => {
    const result = await request('initialize', {
      processId: process.pid,
      rootUri: pathToFileURL(dir).href,
      workspaceFolders: [{ uri: pathToFileURL(dir).href, name: 'ws' }],
      capabilities: { window: { workDoneProgress: true }, workspace: { applyEdit: true, workspaceEdit: { documentChanges: true } } },
      // what the extension sends: the user's settings, flat camelCase keys
      initializationOptions: { k: 2, maxTokens: 24, replCommand: fakeRepl(), proveBudgetS: 30, proveExpansions: 8 },
    });
    const caps = result.capabilities;
    assert.ok(caps.inlineCompletionProvider, 'inlineCompletionProvider');
    assert.ok(caps.codeActionProvider, 'codeActionProvider');
    assert.deepEqual([...caps.executeCommandProvider.commands].sort(), [...SIDECAR_COMMANDS].sort());
    assert.equal(result.serverInfo.name, 'segpilot');
    connection.sendNotification('initialized', {});
    connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'lean4', version: 1, text } });
    const demo = fs.readFileSync(path.join(dir, 'Demo.lean'), 'utf8');
    connection.sendNotification('textDocument/didOpen', { textDocument: { uri: demoUri, languageId: 'lean4', version: 1, text: demo } });
  });

  test('every sidecar setting key in package.json is known to the sidecar (none ignored as unknown)', async () => {
    const keys = Object.keys(manifest.contributes.configuration.properties)
      .filter((k) => !k.startsWith('segpilot.server.'))
      .map((k) => k.slice('segpilot.'.length));
    assert.ok(keys.length > 10);
    assert.ok(!logs.some((l) => /unknown segpilot settings/.test(l)), logs.join('\n'));
  });

  test('segpilot/status: Lean found through the REPL command, and the fields the status bar reads', async () => {
    const s = await status();
    assert.equal(s.lean.checking, true);
    assert.equal(s.lean.found, true);
    assert.deepEqual(s.lean.replCommand, fakeRepl());
    assert.ok(Array.isArray(s.errors));
    assert.equal(typeof s.modelLoaded, 'boolean');
  });

  let item;
  test('inlineCompletion inside a proof: checked segments with the accept command', async () => {
    const line = andSwapLine();
    assert.equal(text.split('\n')[line], '  sorry');
    const result = await request('textDocument/inlineCompletion', {
      textDocument: { uri },
      position: { line, character: 2 },
      context: { triggerKind: 1 },
    });
    assert.ok(Array.isArray(result.items) && result.items.length >= 1, JSON.stringify(result));
    for (const it of result.items) {
      assert.equal(typeof it.insertText, 'string');
      assert.deepEqual(it.range.start, { line, character: 2 });
      assert.equal(it.command.command, 'segpilot.suggestionAccepted');
      const info = it.command.arguments[0];
      assert.equal(info.uri, uri);
      assert.equal(info.checked, true);
      assert.ok(['closed', 'progress'].includes(info.outcome), info.outcome);
      assert.equal(info.goalsBefore, 1);
      assert.ok(Array.isArray(info.goalsAfter));
      assert.deepEqual(info.position, { line, character: 2 });
      // later lines of a segment are indented to the cursor's column
      for (const rest of it.insertText.split('\n').slice(1)) assert.match(rest, /^ {2}\S|^ {2}$|^$/);
    }
    item = result.items[0];
  });

  test('inlineCompletion outside a proof is an empty list', async () => {
    for (const [where, line, character] of [[uri, 0, 0], [demoUri, 9, 10], [demoUri, 2, 4]]) {
      const result = await request('textDocument/inlineCompletion', {
        textDocument: { uri: where },
        position: { line, character },
        context: { triggerKind: 1 },
      });
      assert.deepEqual(result.items, [], `${where} ${line}:${character}`);
    }
  });

  test('segpilot/goalState is accepted, and accepting a suggestion runs its command', async () => {
    const line = andSwapLine();
    connection.sendNotification('segpilot/goalState', {
      uri,
      version: 1,
      position: { line, character: 2 },
      goals: ['p q : Prop\nh : p ∧ q\n⊢ q ∧ p'],
    });
    const answer = await request('workspace/executeCommand', { command: item.command.command, arguments: item.command.arguments });
    assert.equal(answer, null);
    const s = await status();
    assert.deepEqual(s.errors, []);
  });

  test('code action "Insert segment" at a sorry, and its command edits the document', async () => {
    const line = andSwapLine();
    const actions = await request('textDocument/codeAction', {
      textDocument: { uri },
      range: { start: { line, character: 2 }, end: { line, character: 2 } },
      context: { diagnostics: [] },
    });
    const insert = actions.find((a) => a.title === 'segpilot: Insert segment');
    assert.ok(insert, JSON.stringify(actions));
    assert.equal(insert.command.command, 'segpilot.insertSegment');
    const complete = actions.find((a) => a.title === 'segpilot: Complete this proof (search)');
    assert.ok(complete && !complete.disabled, 'proof search is offered when Lean is found');
    const result = await request('workspace/executeCommand', insert.command);
    assert.equal(result.inserted, true, JSON.stringify(result));
    const edit = edits.at(-1).edit.documentChanges[0];
    assert.deepEqual(edit.textDocument, { uri, version: 1 });
    assert.equal(edit.edits[0].range.start.line, line);
    assert.equal(edit.edits[0].newText, result.text);
  });

  test('proveTheorem: work-done progress and the result shape the command reports', async () => {
    const line = 0;
    const result = await request('workspace/executeCommand', {
      command: 'segpilot.proveTheorem',
      arguments: [{ uri, position: { line, character: 0 } }],
    });
    assert.equal(result.holes, 1);
    assert.equal(typeof result.proved, 'number');
    assert.equal(typeof result.applied, 'boolean');
    assert.equal(result.results.length, 1);
    const token = progress.find((p) => p.create)?.create;
    assert.ok(token, 'a progress token was created');
    const kinds = progress.filter((p) => p.token === token).map((p) => p.value.kind);
    assert.equal(kinds[0], 'begin');
    assert.equal(kinds.at(-1), 'end');
    const begin = progress.find((p) => p.token === token && p.value.kind === 'begin');
    assert.equal(begin.value.cancellable, true);
  });

  test('reloadModel answers with the status', async () => {
    const s = await request('workspace/executeCommand', { command: 'segpilot.reloadModel', arguments: [] });
    assert.equal(s.modelLoaded, true);
  });

  test('didChangeConfiguration: without Lean the sidecar reports unchecked and refuses proof search', async () => {
    connection.sendNotification('workspace/didChangeConfiguration', { settings: { replCommand: ['lake', 'exe', 'repl'] } });
    const s = await status();
    assert.equal(s.lean.checking, false);
    await assert.rejects(
      request('workspace/executeCommand', { command: 'segpilot.proveFile', arguments: [{ uri }] }),
      /proof search needs Lean/,
    );
  });

  test('shutdown and exit end the process with status 0', async () => {
    await request('shutdown', null, 30_000);
    connection.sendNotification('exit');
    const { code } = await withTimeout(exited, 30_000, 'exit');
    assert.equal(code, 0, stderr.join(''));
  });
});
