// End to end: the packaged extension in a real VS Code (code-server) in headless Chromium,
// the real sidecar with the default model, Lean checking through the fake REPL's
// core-logic elaborator (tests/fakes/fake_repl.py --elaborate), since no Lean is installed
// here. The workspace is a copy of lean_project/ plus two one-theorem files of that
// fragment (test/fixtures/); Demo.lean itself is outside it (see test/fixtures/README.md).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Editor, EXTENSION, REPO, until } from './harness.mjs';

// The virtual environment with segpilot that the workspace gets as its `.venv`: the extension
// must find the sidecar there by itself (scripts/test-editor.sh passes one installed from a wheel).
const VENV = process.env.SEGPILOT_SIDECAR_VENV || path.join(REPO, '.venv');
const PYTHON = path.join(VENV, 'bin', 'python');
const ARTIFACTS = process.env.SEGPILOT_E2E_ARTIFACTS || path.join(EXTENSION, 'test-artifacts');
// Where to write the README's screenshot (vscode-extension/images/ghost-text.png), if set.
const SCREENSHOT = process.env.SEGPILOT_E2E_SCREENSHOT;
const FAKE_REPL = path.join(REPO, 'tests', 'fakes', 'fake_repl.py');
const FIXTURES = path.join(EXTENSION, 'test', 'fixtures');

const lines = (text) => text.split('\n');
const clean = (text) => text.replace(/\u00a0/g, ' ');

describe('segpilot in code-server', { timeout: 900_000 }, () => {
  /** @type {Editor} */
  let editor;
  let failed = false;
  let graphDir;

  before(async () => {
    fs.rmSync(ARTIFACTS, { recursive: true, force: true });
    graphDir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR || '/tmp'), 'segpilot-graph-'));
    const graph = path.join(graphDir, 'graph.json');
    // An empty graph: every answer comes from the fake's elaborator, none from recordings.
    fs.writeFileSync(graph, JSON.stringify({ about: 'e2e: answers come from --elaborate', commands: [], tactics: [] }));
    try {
      editor = await Editor.open({
        artifacts: ARTIFACTS,
        extraFiles: [path.join(FIXTURES, 'AndSwap.lean'), path.join(FIXTURES, 'OrSwap.lean')],
        venv: VENV,
        settings: {
          // a small search budget for "Prove theorem at cursor"
          'segpilot.proveBudgetS': 30,
          'segpilot.proveExpansions': 3,
          'segpilot.replCommand': [PYTHON, FAKE_REPL, graph, '--elaborate', '--unrecorded-tactics', 'error'],
        },
      });
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  after(async () => {
    if (editor) {
      if (failed) await editor.keep('failure');
      await editor.close();
    }
    if (graphDir) fs.rmSync(graphDir, { recursive: true, force: true });
  });

  const step = (name, fn) =>
    test(name, async () => {
      if (!editor) throw new Error('the editor did not start');
      try {
        await fn();
      } catch (err) {
        failed = true;
        throw err;
      }
    });

  /** Save the active editor; wait for the file on disk to differ from `before`. */
  const savedChange = async (file, before) => {
    await editor.save();
    return until(`${path.basename(file)} saved with the change`, () => {
      const now = fs.readFileSync(file, 'utf8');
      return now !== before ? now : false;
    }, 20_000);
  };

  step('opens a Lean file and reports ready (Lean checking through the fake REPL)', async () => {
    await editor.openFile('AndSwap.lean');
    const text = await editor.waitForStatus(/segpilot: (ready|unchecked|error)/);
    assert.match(text, /segpilot: ready/, `status bar: ${text}\n${editor.outputLog()}`);
    assert.match(editor.outputLog(), /starting .*\/\.venv\/bin\/segpilot serve \(from workspace \.venv\)/);
    // a click on the status bar item shows the sidecar's status in the log
    await editor.page.locator('.statusbar-item', { hasText: 'segpilot: ready' }).first().click();
    await editor.waitForLog(/\[segpilot\] status: \{[\s\S]*"checking": true/);
  });

  step('shows checked ghost text inside a proof, and Tab accepts it', async () => {
    const file = path.join(editor.workspace, 'AndSwap.lean');
    const original = fs.readFileSync(file, 'utf8');
    const [statement, sorry] = lines(original);
    assert.equal(sorry, '  sorry');
    // A new line after `:= by`, indented: the cursor is inside the proof, and typing asks
    // VS Code for inline suggestions.
    await editor.goTo(1, statement.length + 1);
    await editor.page.keyboard.press('End');
    await editor.page.keyboard.press('Enter');
    await editor.page.keyboard.type('  ');
    const ghost = await until('ghost text', async () => {
      const shown = await editor.ghostText();
      return shown.inline.trim() ? shown : false;
    }, 120_000, 200);
    if (SCREENSHOT) await editor.editorScreenshot(SCREENSHOT, 5);
    await editor.screenshot(path.join(ARTIFACTS, 'ghost-text.png'));
    await editor.page.keyboard.press('Tab');
    const accepted = await editor.waitForLog(/suggestion accepted \((checked: \w+|unchecked)\)/);
    assert.match(accepted[0], /checked: (closed|progress)/, 'the accepted suggestion was checked by the fake Lean');
    const saved = await savedChange(file, original);
    const after = lines(saved);
    assert.equal(after[0], statement, 'the statement is unchanged');
    assert.deepEqual(after.slice(-2), [sorry, ''], 'the sorry below the cursor is unchanged');
    const segment = after.slice(1, -2);
    assert.ok(segment.length >= 1 && segment.every((l) => l.startsWith('  ') && l.trim() !== ''), JSON.stringify(after));
    const shown = [ghost.inline, ...ghost.below].map((l) => clean(l).trim()).filter((l) => l !== '');
    assert.deepEqual(segment.map((l) => l.trim()), shown, 'the document holds what the ghost text showed');
  });

  step('no suggestion outside a proof', async () => {
    await editor.openFile('Demo.lean');
    const demo = lines(fs.readFileSync(path.join(editor.workspace, 'Demo.lean'), 'utf8'));
    const row = demo.indexOf('namespace SegpilotDemo') + 1;
    assert.ok(row > 0);
    await editor.goTo(row, 'namespace SegpilotDemo'.length + 1);
    await editor.page.keyboard.type(' ');
    const column = 'namespace SegpilotDemo '.length + 1;
    await editor.waitForLog(new RegExp(`inline completion at Demo\\.lean:${row}:${column}: 0 item\\(s\\)`));
    assert.equal(await editor.hasGhostText(), false);
  });

  step('the code action "Insert segment" inserts a checked segment', async () => {
    const file = path.join(editor.workspace, 'OrSwap.lean');
    const original = fs.readFileSync(file, 'utf8');
    await editor.openFile('OrSwap.lean');
    await editor.goTo(2, 3);
    await editor.page.keyboard.press('Control+.');
    const action = editor.page.locator('.action-widget .monaco-list-row', { hasText: 'segpilot: Insert segment' }).first();
    await action.waitFor({ timeout: 60_000 });
    await action.click();
    await editor.waitForDirty(); // the sidecar's edit arrived (workspace/applyEdit)
    const saved = await savedChange(file, original);
    const after = lines(saved);
    assert.equal(after[0], lines(original)[0]);
    const body = after.slice(1).filter((l) => l.trim() !== '');
    assert.ok(body.length >= 1 && body.every((l) => l.startsWith('  ')), JSON.stringify(after));
    assert.ok(body.some((l) => l.trim() !== 'sorry'), `a segment was inserted: ${JSON.stringify(after)}`);
  });

  step('"Prove theorem at cursor" searches with a cancellable progress and reports', async () => {
    const file = path.join(editor.workspace, 'OrSwap.lean');
    const before = fs.readFileSync(file, 'utf8');
    const row = lines(before).indexOf('  sorry') + 1;
    assert.ok(row > 0, before);
    await editor.goTo(row, 3);
    await editor.command('segpilot: Prove theorem at cursor');
    const progress = await until('the progress notification', async () => {
      const shown = await editor.notifications();
      return shown.find((n) => /segpilot: proving the theorem/.test(n.message)) ?? false;
    }, 60_000, 100);
    assert.ok(progress.buttons.some((b) => /Cancel/.test(b)), JSON.stringify(progress));
    const result = await until('the result message', async () => {
      const shown = await editor.notifications();
      return shown.find((n) => /segpilot: proved \d+ of 1 sorry/.test(n.message)) ?? false;
    }, 120_000, 200);
    const proved = Number(/proved (\d+) of/.exec(result.message)[1]);
    if (proved === 1) {
      await editor.waitForDirty();
      const saved = await savedChange(file, before);
      assert.ok(!saved.includes('sorry'), saved);
    } else {
      assert.equal(proved, 0);
      assert.equal(fs.readFileSync(file, 'utf8'), before);
    }
  });

  step('a sidecar that crashes is started again', async () => {
    const crashed = editor.sidecarPid();
    assert.ok(crashed, 'the sidecar runs under code-server');
    process.kill(crashed, 'SIGKILL');
    await editor.waitForLog(/the sidecar stopped; restarting it \(1 of 3\)/);
    const again = await until('a new sidecar', () => {
      const pid = editor.sidecarPid();
      return pid && pid !== crashed ? pid : false;
    }, 60_000);
    assert.notEqual(again, crashed);
    await editor.waitForStatus(/segpilot: ready/, 60_000);
  });

  step('without Lean the status bar says unchecked', async () => {
    // the REPL command back to its default, `lake exe repl`: no Lean on this machine
    editor.writeWorkspaceSettings({ 'segpilot.replCommand': ['lake', 'exe', 'repl'] });
    const text = await editor.waitForStatus(/segpilot: unchecked/, 60_000);
    assert.match(text, /segpilot: unchecked/);
  });

  step('"Fine-tune on this project" runs segpilot finetune on the project in a terminal', async () => {
    await editor.openFile('Demo.lean');
    await editor.command('segpilot: Fine-tune on this project');
    const logged = await editor.waitForLog(/fine-tune: (.*) \(in (.*)\)/);
    assert.match(logged[1], /\/\.venv\/bin\/segpilot finetune /);
    assert.equal(logged[2], editor.workspace);
    // its first step, in the terminal; without Lean it then stops, saying nothing was
    // traced, and the terminal stays open with what it printed and how it ended
    const shown = await until('finetune in the terminal, ended', async () => {
      const text = (await editor.terminalText()).replace(/\u00a0/g, ' ');
      return /segpilot: error: .*no proof steps were traced/.test(text) && /exit code: 1/.test(text) ? text : false;
    }, 120_000, 500);
    assert.ok(shown.includes(`tracing ${editor.workspace}`), shown);
  });
});

describe('segpilot in code-server, sidecar missing', { timeout: 300_000 }, () => {
  /** @type {Editor} */
  let editor;
  let failed = false;

  before(async () => {
    try {
      editor = await Editor.open({
        artifacts: path.join(ARTIFACTS, 'missing'),
        settings: { 'segpilot.server.pythonPath': path.join(REPO, 'no-such-venv', 'bin', 'python') },
      });
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  after(async () => {
    if (editor) {
      if (failed) await editor.keep('failure-missing');
      await editor.close();
    }
  });

  test('one notification with the fix, and the status bar says error', async () => {
    try {
      await editor.openFile('Demo.lean');
      const text = await editor.waitForStatus(/segpilot: (ready|unchecked|error)/);
      assert.match(text, /segpilot: error/);
      const ours = (shown) => shown.filter((n) => /segpilot/.test(n.message));
      const first = await until('the notification', async () => {
        const shown = ours(await editor.notifications());
        return shown.length ? shown : false;
      }, 30_000);
      assert.equal(first.length, 1, JSON.stringify(first));
      assert.match(first[0].message, /the sidecar cannot start: .*no-such-venv.* does not exist\. Install segpilot/);
      assert.ok(first[0].buttons.some((b) => /Open Settings/.test(b)), JSON.stringify(first[0]));
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  test('a sidecar command that exits at once: one more notification, no retries, none of the client\'s own', async () => {
    try {
      const ours = (shown) => shown.filter((n) => /segpilot/.test(n.message));
      // any executable that exits at once, as a broken sidecar would
      editor.writeWorkspaceSettings({ 'segpilot.server.command': [process.execPath, '-e', 'process.exit(3)'] });
      await editor.waitForLog(/the sidecar did not start/);
      const shown = await until('the second notification', async () => {
        const now = ours(await editor.notifications());
        return now.length >= 2 ? now : false;
      }, 30_000);
      assert.equal(shown.length, 2, JSON.stringify(shown));
      assert.ok(shown.some((n) => /segpilot: the sidecar \(.*\) did not start/.test(n.message)), JSON.stringify(shown));
      // vscode-languageclient's own pop-ups ("segpilot client: couldn't create connection to
      // server", "Connection to server got closed. Server will not be restarted.") stay in the log
      assert.ok(!shown.some((n) => /^segpilot client:|Server will not be restarted/.test(n.message)), JSON.stringify(shown));
      assert.match(editor.outputLog(), /couldn't create connection to server|Server will not be restarted/);
      assert.doesNotMatch(editor.outputLog(), /restarting it/);
      assert.match(await editor.statusText(), /segpilot: error/);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
