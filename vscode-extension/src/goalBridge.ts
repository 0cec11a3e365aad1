/**
 * The goal at the cursor from the official Lean 4 extension's own Lean server, so that no
 * second Lean server runs. Degrades, with one log line, to "no goals from the editor" (the
 * sidecar then asks its own Lean) when that extension is absent or its API changed.
 * Free of `vscode`: the extension's exports come in through a function.
 */
import { clientFor, clientProviderOf, goalsOf, LeanClientProvider, PLAIN_GOAL } from './leanApi';

export interface Position {
  line: number;
  character: number;
}

export interface BridgeOptions {
  /** The official extension's exports (activating it if needed); undefined when absent. */
  exports: () => Promise<unknown> | unknown;
  log: (line: string) => void;
  /** How long to wait for its Lean 4 features on first use. */
  featuresTimeoutMs?: number;
  /** How long one `$/lean/plainGoal` may take before the request goes on without it. */
  requestTimeoutMs?: number;
}

export class GoalBridge {
  private provider: Promise<LeanClientProvider | undefined> | undefined;
  private broken = false;

  constructor(private readonly options: BridgeOptions) {}

  /** Whether goals may come from the official extension (false once it degraded). */
  get usable(): boolean {
    return !this.broken;
  }

  private degrade(reason: string): undefined {
    if (!this.broken) {
      this.broken = true;
      this.options.log(`goal bridge off (${reason}); the sidecar finds goals with its own Lean`);
    }
    return undefined;
  }

  private async resolveProvider(): Promise<LeanClientProvider | undefined> {
    let exports: unknown;
    try {
      exports = await this.options.exports();
    } catch (err) {
      return this.degrade(`the Lean 4 extension failed to activate: ${String(err)}`);
    }
    if (exports === undefined) return this.degrade('the Lean 4 extension (leanprover.lean4) is not installed');
    const found = await clientProviderOf(exports, this.options.featuresTimeoutMs ?? 10_000);
    if (!found.provider) return this.degrade(`the Lean 4 extension's API changed: ${found.reason}`);
    this.options.log('goal bridge on: goals come from the Lean 4 extension');
    return found.provider;
  }

  /** The goals Lean shows at `position`: [] for none, undefined when unknown. */
  async goalsAt(fsPath: string, uri: string, position: Position): Promise<string[] | undefined> {
    if (this.broken) return undefined;
    this.provider ??= this.resolveProvider();
    const provider = await this.provider;
    if (!provider) return undefined;
    const client = clientFor(provider, fsPath);
    if (!client) return undefined; // Lean not running for this file (yet): no goals, no error
    let answer: unknown;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.options.requestTimeoutMs ?? 3000);
      });
      answer = await Promise.race([client.sendRequest(PLAIN_GOAL, { textDocument: { uri }, position }), timeout]);
    } catch (err) {
      this.options.log(`${PLAIN_GOAL} failed: ${String(err)}`);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
    if (answer === 'timeout') return undefined;
    const goals = goalsOf(answer);
    if (goals === undefined) return this.degrade(`${PLAIN_GOAL} answered in an unknown shape`);
    return goals;
  }
}
