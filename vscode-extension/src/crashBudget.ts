/**
 * How often a crashed sidecar is restarted: at most `limit` times within `windowMs`;
 * beyond that it stays down and the user is told once. Free of `vscode`.
 */
export class CrashBudget {
  private crashes: number[] = [];

  constructor(
    readonly limit = 3,
    readonly windowMs = 3 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Record a crash; whether the sidecar may be started again. */
  crashed(): boolean {
    const t = this.now();
    this.crashes = this.crashes.filter((at) => t - at < this.windowMs);
    this.crashes.push(t);
    return this.crashes.length <= this.limit;
  }

  get recent(): number {
    return this.crashes.length;
  }
}

/** Runs `notify` the first time only, until `reset` (one message, not one per keystroke). */
export class Once {
  private done = false;
  constructor(private readonly notify: (message: string) => void) {}

  show(message: string): boolean {
    if (this.done) return false;
    this.done = true;
    this.notify(message);
    return true;
  }

  reset(): void {
    this.done = false;
  }
}
