// The goal bridge to the official Lean 4 extension, against fakes of its exports.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GoalBridge } from '../../src/goalBridge';
import { clientFor, goalsOf, PLAIN_GOAL } from '../../src/leanApi';

function leanClient(folder: string, answer: (params: any) => unknown, running = true) {
  const calls: { method: string; params: any }[] = [];
  return {
    calls,
    isRunning: () => running,
    getClientFolder: () => ({ scheme: 'file', fsPath: folder }),
    sendRequest: async (method: string, params: any) => {
      calls.push({ method, params });
      return answer(params);
    },
  };
}

function exportsWith(clients: ReturnType<typeof leanClient>[]) {
  return {
    lean4EnabledFeatures: Promise.resolve({
      clientProvider: { getActiveClient: () => clients[0], getClients: () => clients },
    }),
  };
}

const at = { line: 3, character: 2 };

test('goals come from the client of the innermost folder, by $/lean/plainGoal', async () => {
  const outer = leanClient('/ws', () => ({ rendered: '', goals: ['outer'] }));
  const inner = leanClient('/ws/sub', () => ({ rendered: '```lean\n⊢ q ∧ p\n```', goals: ['p q : Prop\n⊢ q ∧ p'] }));
  const logs: string[] = [];
  const bridge = new GoalBridge({ exports: () => exportsWith([outer, inner]), log: (l) => logs.push(l) });
  assert.deepEqual(await bridge.goalsAt('/ws/sub/A.lean', 'file:///ws/sub/A.lean', at), ['p q : Prop\n⊢ q ∧ p']);
  assert.deepEqual(inner.calls, [{ method: PLAIN_GOAL, params: { textDocument: { uri: 'file:///ws/sub/A.lean' }, position: at } }]);
  assert.equal(outer.calls.length, 0);
  assert.deepEqual(await bridge.goalsAt('/ws/B.lean', 'file:///ws/B.lean', at), ['outer']);
  assert.deepEqual(logs, ['goal bridge on: goals come from the Lean 4 extension']);
});

test('no goal at the position is an empty list; a stopped client gives none', async () => {
  const client = leanClient('/ws', () => null);
  const bridge = new GoalBridge({ exports: () => exportsWith([client]), log: () => undefined });
  assert.deepEqual(await bridge.goalsAt('/ws/A.lean', 'file:///ws/A.lean', at), []);
  const stopped = leanClient('/ws', () => null, false);
  assert.equal(clientFor({ getActiveClient: () => stopped, getClients: () => [stopped] }, '/ws/A.lean'), undefined);
  assert.equal(clientFor({ getActiveClient: () => undefined, getClients: () => [] }, '/elsewhere/A.lean'), undefined);
});

test('a folder that is only a name prefix does not hold the file', () => {
  const other = leanClient('/ws2', () => null);
  const active = leanClient('/x', () => null);
  assert.equal(clientFor({ getActiveClient: () => active, getClients: () => [other] }, '/ws/A.lean'), active);
});

test('without the official extension: one log line, then no more tries', async () => {
  const logs: string[] = [];
  let asked = 0;
  const bridge = new GoalBridge({ exports: () => ((asked += 1), undefined), log: (l) => logs.push(l) });
  for (let i = 0; i < 3; i += 1) assert.equal(await bridge.goalsAt('/ws/A.lean', 'file:///ws/A.lean', at), undefined);
  assert.equal(asked, 1);
  assert.equal(logs.length, 1);
  assert.match(logs[0], /not installed/);
  assert.equal(bridge.usable, false);
});

test('a changed API degrades with one log line', async () => {
  for (const exports of [
    {},
    { lean4EnabledFeatures: Promise.resolve({ clientProvider: { getActiveClient: () => undefined } }) },
    { lean4EnabledFeatures: Promise.reject(new Error('boom')) },
  ]) {
    const logs: string[] = [];
    const bridge = new GoalBridge({ exports: () => exports, log: (l) => logs.push(l) });
    assert.equal(await bridge.goalsAt('/ws/A.lean', 'file:///ws/A.lean', at), undefined);
    assert.equal(await bridge.goalsAt('/ws/A.lean', 'file:///ws/A.lean', at), undefined);
    assert.equal(logs.length, 1, logs.join('\n'));
    assert.match(logs[0], /goal bridge off/);
  }
});

test('a plainGoal answer of another shape degrades; a slow one is skipped', async () => {
  const logs: string[] = [];
  const odd = leanClient('/ws', () => ({ rendered: 'x', goals: 'not a list' }));
  const bridge = new GoalBridge({ exports: () => exportsWith([odd]), log: (l) => logs.push(l) });
  assert.equal(await bridge.goalsAt('/ws/A.lean', 'file:///ws/A.lean', at), undefined);
  assert.match(logs.at(-1) ?? '', /unknown shape/);
  assert.equal(bridge.usable, false);
  const slow = leanClient('/ws', () => new Promise(() => undefined));
  const patient = new GoalBridge({ exports: () => exportsWith([slow]), log: () => undefined, requestTimeoutMs: 20 });
  assert.equal(await patient.goalsAt('/ws/A.lean', 'file:///ws/A.lean', at), undefined);
  assert.equal(patient.usable, true);
  assert.deepEqual(goalsOf({ goals: ['a', 'b'] }), ['a', 'b']);
});

test('features that never resolve time out into the fallback', async () => {
  const logs: string[] = [];
  const bridge = new GoalBridge({
    exports: () => ({ lean4EnabledFeatures: new Promise(() => undefined) }),
    log: (l) => logs.push(l),
    featuresTimeoutMs: 20,
  });
  assert.equal(await bridge.goalsAt('/ws/A.lean', 'file:///ws/A.lean', at), undefined);
  assert.match(logs[0], /did not resolve within 20 ms/);
});
