// End to end: the packaged extension in a real VS Code (code-server) in headless Chromium,
// the real sidecar with the default model, Lean checking through the fake REPL's
// core-logic elaborator (tests/fakes/fake_repl.py --elaborate), since no Lean is installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Editor, EXTENSION, REPO, until } from './harness.mjs';

const PYTHON = process.env.SEGPILOT_PYTHON || path.join(REPO, '.venv', 'bin', 'python');
const ARTIFACTS = process.env.SEGPILOT_E2E_ARTIFACTS || path.join(EXTENSION, 'test-artifacts');
const SCREENSHOT = process.env.SEGPILOT_E2E_SCREENSHOT; // where the README's screenshot goes
const FAKE_REPL = path.join(REPO, 'tests', 'fakes', 'fake_repl.py');
const DEMO = 'Demo.lean';

/** An empty graph: every answer comes from the fake's elaborator, none from recordings. */
function emptyGraph(dir) {
  const file = path.join(dir, 'graph.json');
  fs.writeFileSync(file, JSON.stringify({ about: 'e2e: answers come from --elaborate', commands: [], tactics: [] }));
  return file;
}

const lines = (text) => text.split('\n');

describe('segpilot in code-server', { timeout: 600_000 }, () => {
  /** @type {Editor} */
  let editor;
  let demo;
  let original;
  let failed = false;

  before(async () => {
    const graphDir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR || '/tmp'), 'segpilot-graph-'));
    editor = await Editor.open({
      artifacts: ARTIFACTS,
      settings: (ed) => ({
        'segpilot.server.command': [PYTHON, '-m', 'segpilot', 'serve', '--log-file', ed.sidecarLog],
        'segpilot.replCommand': [PYTHON, FAKE_REPL, emptyGraph(graphDir), '--elaborate', '--unrecorded-tactics', 'error'],
      }),
    }).catch((err) => {
      failed = true;
      throw err;
    });
    demo = path.join(editor.workspace, DEMO);
    original = fs.readFileSync(demo, 'utf8');
  });

  after(async () => {
    if (editor) {
      if (failed) await editor.keep('failure');
      await editor.close();
    }
  });

  const step = (name, fn) =>
    test(name, async () => {
      try {
        await fn();
      } catch (err) {
        failed = true;
        throw err;
      }
    });

  step('opens a Lean file and reports ready (Lean checking through the fake REPL)', async () => {
    await editor.openFile(DEMO);
    const text = await editor.waitForStatus(/segpilot: (ready|unchecked|error)/);
    assert.match(text, /segpilot: ready/, `status bar: ${text}\n${editor.outputLog()}`);
  });

  step('shows checked ghost text inside a proof, and Tab accepts it', async () => {
    // and_swap_demo: `(p q : Prop) (h : p ∧ q) : q ∧ p := by` then `  sorry` on line 16.
    const row = lines(original).findIndex((l) => l.startsWith('theorem and_swap_demo')) + 1;
    assert.equal(lines(original)[row], '  sorry');
    await editor.goTo(row + 1, 3);
    await editor.page.keyboard.press('Alt+Backslash'); // Trigger Inline Suggestion
    const ghost = await until('ghost text', async () => {
      const shown = await editor.ghostText();
      return shown.inline.trim() ? shown : false;
    }, 120_000, 200);
    if (SCREENSHOT) await editor.screenshot(SCREENSHOT);
    await editor.screenshot(path.join(ARTIFACTS, 'ghost-text.png'));
    const accepted = editor.waitForLog(/suggestion accepted \((checked: \w+|unchecked)\)/);
    await editor.page.keyboard.press('Tab');
    await accepted;
    await editor.page.keyboard.press('Control+s');
    const saved = await until('the file saved with the suggestion', () => {
      const now = fs.readFileSync(demo, 'utf8');
      return now !== original ? now : false;
    }, 20_000);
    const before = lines(original);
    const after = lines(saved);
    const inserted = after.slice(row, after.length - (before.length - row - 1));
    // Everything before the proof's line and after its `sorry` is unchanged.
    assert.deepEqual(after.slice(0, row), before.slice(0, row));
    assert.deepEqual(after.slice(after.length - (before.length - row - 1)), before.slice(row + 1));
    // The segment starts at the cursor, indented like it, and is what the ghost text showed.
    assert.ok(inserted.length >= 1);
    assert.ok(inserted.every((l) => l.startsWith('  ') && l.trim() !== ''), JSON.stringify(inserted));
    const segment = inserted.filter((l) => l.trim() !== 'sorry');
    assert.ok(segment.length >= 1, `no segment inserted: ${JSON.stringify(inserted)}`);
    const shown = [ghost.inline, ...ghost.below].map((l) => l.replace(/\u00a0/g, ' ').trim()).filter((l) => l !== '' && l !== 'sorry');
    assert.deepEqual(segment.map((l) => l.trim()), shown, 'the document holds what the ghost text showed');
    const log = editor.outputLog();
    assert.match(log, /suggestion accepted \(checked: (closed|progress)\)/, 'the accepted suggestion was checked by the fake Lean');
  });
});
