/** The status bar item's states and what each shows. Free of `vscode`. */

export type Phase = 'starting' | 'ready' | 'unchecked' | 'thinking' | 'error' | 'stopped';

export interface StatusView {
  text: string;
  tooltip: string;
  /** Whether the item should carry the error background. */
  alarming: boolean;
}

/** Sidecar status (`segpilot/status`) fields the extension reads. */
export interface SidecarStatus {
  model?: string | null;
  modelLoaded?: boolean;
  lean?: { found?: boolean; checking?: boolean; replCommand?: string[] };
  errors?: string[];
}

/** ready when Lean checks suggestions, unchecked when the sidecar found no Lean. */
export function phaseFromStatus(status: SidecarStatus): 'ready' | 'unchecked' {
  return status.lean?.checking === true ? 'ready' : 'unchecked';
}

export function statusView(phase: Phase, detail = ''): StatusView {
  const more = detail ? `\n${detail}` : '';
  switch (phase) {
    case 'starting':
      return { text: '$(loading~spin) segpilot: starting', tooltip: `Starting the segpilot sidecar${more}`, alarming: false };
    case 'ready':
      return { text: '$(check) segpilot: ready', tooltip: `Suggestions are checked in Lean. Click for the sidecar's status.${more}`, alarming: false };
    case 'unchecked':
      return {
        text: '$(warning) segpilot: unchecked',
        tooltip: `unchecked: no Lean. Suggestions are not run in Lean before they are shown. Click for the sidecar's status.${more}`,
        alarming: false,
      };
    case 'thinking':
      return { text: '$(sync~spin) segpilot: thinking', tooltip: `Computing suggestions${more}`, alarming: false };
    case 'error':
      return { text: '$(error) segpilot: error', tooltip: `The sidecar failed. Click for details.${more}`, alarming: true };
    case 'stopped':
      return { text: '$(circle-slash) segpilot: stopped', tooltip: `The sidecar is not running.${more}`, alarming: true };
  }
}

/** Counts requests in flight so overlapping ones show `thinking` until the last ends. */
export class Activity {
  private inFlight = 0;
  constructor(private readonly show: (thinking: boolean) => void) {}

  begin(): void {
    this.inFlight += 1;
    if (this.inFlight === 1) this.show(true);
  }

  end(): void {
    if (this.inFlight === 0) return;
    this.inFlight -= 1;
    if (this.inFlight === 0) this.show(false);
  }

  get busy(): boolean {
    return this.inFlight > 0;
  }
}
