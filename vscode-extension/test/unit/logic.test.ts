// The extension's vscode-free logic: finding the sidecar, settings, status, crash budget.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CrashBudget, Once } from '../../src/crashBudget';
import { commandExists, fineTuneCommand, projectRootOf, resolveServerCommand, shellJoin } from '../../src/serverCommand';
import { sidecarKeys, sidecarSettings } from '../../src/settings';
import { Activity, phaseFromStatus, statusView } from '../../src/status';

const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));

function lookup(executables: string[], folders: string[] = ['/ws'], pathVariable = '/usr/bin:/opt/py/bin') {
  return { folders, pathVariable, platform: 'linux' as const, isExecutable: (f: string) => executables.includes(f) };
}

test('the server command setting is used as given', () => {
  const found = resolveServerCommand({ command: ['/x/segpilot', 'serve', '--log-file', '/tmp/l'], pythonPath: '/py' }, lookup([]));
  assert.deepEqual(found, { command: '/x/segpilot', args: ['serve', '--log-file', '/tmp/l'], origin: 'setting' });
});

test('a python path runs the module', () => {
  const found = resolveServerCommand({ command: [], pythonPath: ' /venv/bin/python ' }, lookup([]));
  assert.deepEqual(found, { command: '/venv/bin/python', args: ['-m', 'segpilot', 'serve'], origin: 'pythonPath' });
});

test('the workspace .venv comes before PATH, the first folder first', () => {
  const all = ['/b/.venv/bin/segpilot', '/a/.venv/bin/segpilot', '/opt/py/bin/segpilot'];
  assert.equal(resolveServerCommand({ command: [], pythonPath: '' }, lookup(all, ['/a', '/b']))?.command, '/a/.venv/bin/segpilot');
  const fromPath = resolveServerCommand({ command: [], pythonPath: '' }, lookup(['/opt/py/bin/segpilot'], ['/a']));
  assert.deepEqual(fromPath, { command: '/opt/py/bin/segpilot', args: ['serve'], origin: 'PATH' });
});

test('windows looks in .venv\\Scripts and splits PATH on ;', () => {
  const found = resolveServerCommand(
    { command: [], pythonPath: '' },
    { folders: ['C:\\ws'], pathVariable: 'C:\\py;C:\\other', platform: 'win32', isExecutable: (f) => f === 'C:\\other\\segpilot.exe' },
  );
  assert.equal(found?.command, 'C:\\other\\segpilot.exe');
  const venv = resolveServerCommand(
    { command: [], pythonPath: '' },
    { folders: ['C:\\ws'], pathVariable: '', platform: 'win32', isExecutable: (f) => f === 'C:\\ws\\.venv\\Scripts\\segpilot.exe' },
  );
  assert.equal(venv?.origin, 'workspace .venv');
});

test('nothing found gives undefined (the caller shows the fix once)', () => {
  assert.equal(resolveServerCommand({ command: ['  '], pythonPath: '' }, lookup([])), undefined);
});

test("the manifest's sidecar keys exclude the extension's own settings", () => {
  const keys = sidecarKeys(manifest.contributes.configuration.properties);
  assert.ok(keys.includes('maxItems') && keys.includes('replCommand') && keys.includes('modelPath'));
  assert.ok(!keys.some((k) => k.startsWith('server.')));
  assert.deepEqual(sidecarKeys({ 'segpilot.server.command': {}, 'segpilot.k': {}, 'other.k': {} }), ['k']);
});

test('only values the user set are sent, the most specific level winning', () => {
  const seen: Record<string, object> = {
    k: { globalValue: 8 },
    maxItems: { globalValue: 2, workspaceValue: 5 },
    modelPath: { workspaceFolderValue: null, globalValue: '/m.gguf' },
    preset: {},
  };
  assert.deepEqual(sidecarSettings(['k', 'maxItems', 'modelPath', 'preset', 'absent'], (key) => seen[key]), {
    k: 8,
    maxItems: 5,
    modelPath: null,
  });
});

test('status: ready only when the sidecar checks in Lean', () => {
  assert.equal(phaseFromStatus({ lean: { found: true, checking: true } }), 'ready');
  assert.equal(phaseFromStatus({ lean: { found: false, checking: false } }), 'unchecked');
  assert.equal(phaseFromStatus({}), 'unchecked');
  assert.match(statusView('unchecked').tooltip, /unchecked: no Lean/);
  assert.match(statusView('ready').text, /segpilot: ready/);
  assert.match(statusView('thinking').text, /segpilot: thinking/);
  const error = statusView('error', 'spawn ENOENT');
  assert.ok(error.alarming);
  assert.match(error.tooltip, /spawn ENOENT/);
});

test('activity shows thinking until the last overlapping request ends', () => {
  const shown: boolean[] = [];
  const activity = new Activity((thinking) => shown.push(thinking));
  activity.begin();
  activity.begin();
  activity.end();
  assert.equal(activity.busy, true);
  activity.end();
  activity.end(); // an extra end is ignored
  assert.deepEqual(shown, [true, false]);
});

test('crash budget: a few restarts within the window, then none', () => {
  let now = 0;
  const budget = new CrashBudget(3, 1000, () => now);
  assert.deepEqual([budget.crashed(), budget.crashed(), budget.crashed(), budget.crashed()], [true, true, true, false]);
  now = 5000; // the old crashes are out of the window
  assert.equal(budget.crashed(), true);
  assert.equal(budget.recent, 1);
});

test('once: one notification until reset', () => {
  const shown: string[] = [];
  const once = new Once((m) => shown.push(m));
  assert.equal(once.show('a'), true);
  assert.equal(once.show('b'), false);
  once.reset();
  once.show('c');
  assert.deepEqual(shown, ['a', 'c']);
});

/** VS Code's `when` clauses as far as the manifest uses them: `&&`, `!`, `==`, keys. */
function when(clause: string, context: Record<string, unknown>): boolean {
  return clause.split('&&').every((raw) => {
    const part = raw.trim();
    if (part.startsWith('!')) return !context[part.slice(1).trim()];
    const [key, value] = part.split('==').map((s) => s.trim());
    return value === undefined ? Boolean(context[key]) : context[key] === value;
  });
}

test("Tab accepts ghost text in Lean files, except while Lean's abbreviation input is active", () => {
  const tab = manifest.contributes.keybindings.filter((k: { key: string }) => k.key === 'tab');
  assert.equal(tab.length, 1);
  assert.equal(tab[0].command, 'editor.action.inlineSuggest.commit');
  const base = { editorTextFocus: true, editorLangId: 'lean4', inlineSuggestionVisible: true };
  assert.equal(when(tab[0].when, base), true);
  assert.equal(when(tab[0].when, { ...base, 'lean4.input.isActive': true }), false);
  assert.equal(when(tab[0].when, { ...base, suggestWidgetVisible: true }), false);
  assert.equal(when(tab[0].when, { ...base, inlineSuggestionVisible: false }), false);
  assert.equal(when(tab[0].when, { ...base, editorLangId: 'python' }), false);
});

test('the manifest contributes the lean4 language without a grammar, and activates on it', () => {
  assert.deepEqual(manifest.activationEvents, ['onLanguage:lean4']);
  const lean = manifest.contributes.languages.find((l: { id: string }) => l.id === 'lean4');
  assert.deepEqual(lean.extensions, ['.lean']);
  assert.equal(manifest.contributes.grammars, undefined);
});

test('a command is checked as a path, or looked up on PATH when it is a bare name', () => {
  const l = lookup(['/opt/py/bin/segpilot', '/abs/python']);
  assert.equal(commandExists('/abs/python', l), true);
  assert.equal(commandExists('/abs/missing', l), false);
  assert.equal(commandExists('segpilot', l), true);
  assert.equal(commandExists('python', l), false);
  const win = { folders: [], pathVariable: 'C:\\py', platform: 'win32' as const, isExecutable: (f: string) => f === 'C:\\py\\segpilot.exe' };
  assert.equal(commandExists('segpilot', win), true);
});

test('fine-tune runs the sidecar\'s segpilot with finetune in place of serve', () => {
  const venv = { command: '/ws/.venv/bin/segpilot', args: ['serve'], origin: 'workspace .venv' as const };
  assert.deepEqual(fineTuneCommand(venv, '/ws'), ['/ws/.venv/bin/segpilot', 'finetune', '/ws']);
  const python = { command: '/py', args: ['-m', 'segpilot', 'serve'], origin: 'pythonPath' as const };
  assert.deepEqual(fineTuneCommand(python, '/ws', ['python3', 'fake repl.py']), [
    '/py', '-m', 'segpilot', 'finetune', '/ws', '--repl-command', "python3 'fake repl.py'",
  ]);
  assert.equal(fineTuneCommand({ command: '/wrapper', args: [], origin: 'setting' }, '/ws'), undefined);
  assert.equal(shellJoin(["it's", 'a b', 'plain-1.0']), `'it'\\''s' 'a b' plain-1.0`);
});

test('the project of a file is the nearest folder up with a Lake file or toolchain', () => {
  const files = new Set(['/ws/proj/lakefile.toml', '/ws/lean-toolchain']);
  const exists = (p: string) => files.has(p);
  assert.equal(projectRootOf('/ws/proj/Sub/A.lean', exists), '/ws/proj');
  assert.equal(projectRootOf('/ws/B.lean', exists), '/ws');
  assert.equal(projectRootOf('/other/C.lean', exists), undefined);
  assert.equal(projectRootOf('/ws/x/D.lean', () => false, ['/ws/x']), undefined);
});
