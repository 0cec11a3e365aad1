/**
 * The part of the official Lean 4 extension's (`leanprover.lean4`) exports that segpilot
 * uses, pinned here and nowhere else. The API is undocumented: these shapes were read from
 * vscode-lean4 0.0.239 (src/exports.ts, src/utils/clientProvider.ts, src/leanclient.ts).
 * Everything taken from it is checked at run time by `leanGoalSource`; a missing or changed
 * piece gives `undefined` and a reason, and segpilot falls back to its own Lean.
 */

export const LEAN4_EXTENSION_ID = 'leanprover.lean4';
export const PLAIN_GOAL = '$/lean/plainGoal';

/** `Exports` of vscode-lean4: `lean4EnabledFeatures` resolves once a Lean 4 file is open. */
export interface Lean4Exports {
  lean4EnabledFeatures: Promise<{ clientProvider: LeanClientProvider }>;
}

/** `LeanClientProvider`: one `LeanClient` per Lean project folder. */
export interface LeanClientProvider {
  getActiveClient(): LeanClient | undefined;
  getClients(): LeanClient[];
}

/** `LeanClient`: wraps the vscode-languageclient client talking to `lake serve`. */
export interface LeanClient {
  isRunning(): boolean;
  sendRequest(method: string, params: unknown): Promise<unknown>;
  /** An `ExtUri`; for files it has `scheme: 'file'` and `fsPath`. */
  getClientFolder(): { scheme: string; fsPath?: string };
}

/** `$/lean/plainGoal`'s answer: null when no goal is open there. */
export interface PlainGoal {
  rendered: string;
  goals: string[];
}

export interface PlainGoalParams {
  textDocument: { uri: string };
  position: { line: number; character: number };
}

function isFunction(value: unknown): value is (...args: unknown[]) => unknown {
  return typeof value === 'function';
}

/** The client provider, or why it cannot be used (the exports are awaited for at most
 * `timeoutMs`: the feature set resolves only when the official extension runs Lean 4). */
export async function clientProviderOf(
  exports: unknown,
  timeoutMs: number,
): Promise<{ provider?: LeanClientProvider; reason?: string }> {
  const features = (exports as Partial<Lean4Exports> | undefined)?.lean4EnabledFeatures;
  if (!features || typeof (features as Promise<unknown>).then !== 'function') {
    return { reason: 'its exports have no lean4EnabledFeatures promise' };
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  let resolved: unknown;
  try {
    resolved = await Promise.race([features, timeout]);
  } catch (err) {
    return { reason: `lean4EnabledFeatures failed: ${String(err)}` };
  } finally {
    clearTimeout(timer);
  }
  if (resolved === 'timeout') {
    return { reason: `lean4EnabledFeatures did not resolve within ${timeoutMs} ms` };
  }
  const provider = (resolved as { clientProvider?: unknown } | undefined)?.clientProvider as
    | Partial<LeanClientProvider>
    | undefined;
  if (!provider || !isFunction(provider.getActiveClient) || !isFunction(provider.getClients)) {
    return { reason: 'clientProvider lacks getActiveClient/getClients' };
  }
  return { provider: provider as LeanClientProvider };
}

/** The running client whose folder holds `fsPath` (innermost), else the active one. */
export function clientFor(provider: LeanClientProvider, fsPath: string): LeanClient | undefined {
  let best: LeanClient | undefined;
  let bestLength = -1;
  for (const client of provider.getClients()) {
    if (!isFunction(client?.getClientFolder)) continue;
    const folder = client.getClientFolder();
    const root = folder?.scheme === 'file' ? folder.fsPath : undefined;
    if (root && (fsPath === root || fsPath.startsWith(root.endsWith('/') || root.endsWith('\\') ? root : root + '/') || fsPath.startsWith(root + '\\')) && root.length > bestLength) {
      best = client;
      bestLength = root.length;
    }
  }
  const chosen = best ?? provider.getActiveClient();
  if (!chosen || !isFunction(chosen.isRunning) || !isFunction(chosen.sendRequest)) return undefined;
  return chosen.isRunning() ? chosen : undefined;
}

/** The goals of a `$/lean/plainGoal` answer: [] for null; undefined if the shape changed. */
export function goalsOf(answer: unknown): string[] | undefined {
  if (answer === null) return [];
  const goals = (answer as Partial<PlainGoal> | undefined)?.goals;
  if (Array.isArray(goals) && goals.every((g) => typeof g === 'string')) return goals;
  return undefined;
}
