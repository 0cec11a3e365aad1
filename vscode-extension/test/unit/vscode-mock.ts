// A small stand-in for the `vscode` module: what activation touches, recorded for asserts.
type Listener<T> = (event: T) => unknown;

export const recorded = {
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  executed: [] as { command: string; args: unknown[] }[],
  errors: [] as string[],
  infos: [] as string[],
  statusItems: [] as StatusBarItem[],
  outputs: [] as OutputChannel[],
  configListeners: [] as Listener<{ affectsConfiguration(section: string): boolean }>[],
  selectionListeners: [] as Listener<unknown>[],
  /** `segpilot.<key>` -> the value the user set (globalValue). */
  settings: new Map<string, unknown>(),
  extensions: new Map<string, unknown>(),
  folders: [] as string[],
  progress: [] as ShownProgress[],
  tasks: [] as Task[],
};

export function resetMock(): void {
  recorded.commands.clear();
  recorded.executed.length = 0;
  recorded.errors.length = 0;
  recorded.infos.length = 0;
  recorded.statusItems.length = 0;
  recorded.outputs.length = 0;
  recorded.configListeners.length = 0;
  recorded.selectionListeners.length = 0;
  recorded.settings.clear();
  recorded.extensions.clear();
  recorded.folders.length = 0;
  recorded.progress.length = 0;
  recorded.tasks.length = 0;
  tasks.failure = undefined;
}

export class Disposable {
  constructor(private readonly fn: () => void = () => undefined) {}
  dispose(): void {
    this.fn();
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Uri {
  constructor(
    readonly scheme: string,
    readonly fsPath: string,
  ) {}
  get path(): string {
    return this.fsPath;
  }
  static file(p: string): Uri {
    return new Uri('file', p);
  }
  toString(): string {
    return `${this.scheme}://${this.fsPath}`;
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}

export interface ShownProgress {
  options: { location: ProgressLocation; title?: string; cancellable?: boolean };
  reports: { message?: string; increment?: number }[];
  cancel(): void;
  done: Promise<unknown>;
}

export enum TaskScope {
  Global = 1,
  Workspace = 2,
}

export enum TaskRevealKind {
  Always = 1,
  Silent = 2,
  Never = 3,
}

export enum TaskPanelKind {
  Shared = 1,
  Dedicated = 2,
  New = 3,
}

export class ProcessExecution {
  constructor(
    readonly process: string,
    readonly args: string[],
    readonly options?: { cwd?: string },
  ) {}
}

export class Task {
  presentationOptions: { reveal?: TaskRevealKind; panel?: TaskPanelKind; clear?: boolean } = {};
  constructor(
    readonly definition: { type: string },
    readonly scope: TaskScope,
    readonly name: string,
    readonly source: string,
    readonly execution: ProcessExecution,
  ) {}
}

export const tasks = {
  /** Set by a test: executeTask rejects with it (as when VS Code cannot run the task). */
  failure: undefined as Error | undefined,
  executeTask(task: Task): Promise<unknown> {
    recorded.tasks.push(task);
    if (tasks.failure) return Promise.reject(tasks.failure);
    return thenable({ task, terminate: () => undefined });
  },
};

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export class StatusBarItem {
  text = '';
  tooltip: unknown = '';
  command: unknown;
  name = '';
  backgroundColor: unknown;
  visible = false;
  constructor(readonly id: string) {}
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  dispose(): void {
    this.visible = false;
  }
}

export class OutputChannel {
  lines: string[] = [];
  shown = 0;
  constructor(readonly name: string) {}
  appendLine(line: string): void {
    this.lines.push(line);
  }
  append(text: string): void {
    this.lines.push(text);
  }
  info(text: string): void {
    this.lines.push(text);
  }
  warn(text: string): void {
    this.lines.push(text);
  }
  error(text: string): void {
    this.lines.push(String(text));
  }
  show(): void {
    this.shown += 1;
  }
  dispose(): void {}
}

const thenable = (value?: unknown) => Promise.resolve(value);

export const window = {
  createStatusBarItem(id: string): StatusBarItem {
    const item = new StatusBarItem(id);
    recorded.statusItems.push(item);
    return item;
  },
  createOutputChannel(name: string): OutputChannel {
    const channel = new OutputChannel(name);
    recorded.outputs.push(channel);
    return channel;
  },
  showErrorMessage(message: string): Promise<unknown> {
    recorded.errors.push(message);
    return thenable(undefined);
  },
  showInformationMessage(message: string): Promise<unknown> {
    recorded.infos.push(message);
    return thenable(undefined);
  },
  activeTextEditor: undefined as unknown,
  onDidChangeTextEditorSelection(listener: Listener<unknown>): Disposable {
    recorded.selectionListeners.push(listener);
    return new Disposable(() => recorded.selectionListeners.splice(recorded.selectionListeners.indexOf(listener), 1));
  },
  withProgress(
    options: ShownProgress['options'],
    task: (
      progress: { report(value: { message?: string; increment?: number }): void },
      token: { onCancellationRequested(listener: () => void): Disposable },
    ) => Promise<unknown>,
  ): Promise<unknown> {
    const listeners: (() => void)[] = [];
    const shown: ShownProgress = { options, reports: [], cancel: () => listeners.forEach((l) => l()), done: Promise.resolve() };
    recorded.progress.push(shown);
    shown.done = task(
      { report: (value) => shown.reports.push(value) },
      { onCancellationRequested: (listener) => (listeners.push(listener), new Disposable()) },
    );
    return shown.done;
  },
};

export const commands = {
  registerCommand(id: string, fn: (...args: unknown[]) => unknown): Disposable {
    if (recorded.commands.has(id)) throw new Error(`command '${id}' already exists`);
    recorded.commands.set(id, fn);
    return new Disposable(() => recorded.commands.delete(id));
  },
  executeCommand(command: string, ...args: unknown[]): Promise<unknown> {
    recorded.executed.push({ command, args });
    return thenable(undefined);
  },
};

export const workspace = {
  get workspaceFolders() {
    return recorded.folders.map((f, index) => ({ uri: Uri.file(f), name: f, index }));
  },
  getConfiguration(section: string) {
    const full = (key: string) => `${section}.${key}`;
    return {
      get<T>(key: string): T | undefined {
        return recorded.settings.get(full(key)) as T | undefined;
      },
      inspect(key: string) {
        const value = recorded.settings.get(full(key));
        return { key: full(key), globalValue: value };
      },
    };
  },
  onDidChangeConfiguration(listener: Listener<{ affectsConfiguration(section: string): boolean }>): Disposable {
    recorded.configListeners.push(listener);
    return new Disposable();
  },
};

export const extensions = {
  getExtension(id: string) {
    if (!recorded.extensions.has(id)) return undefined;
    return { id, isActive: true, exports: recorded.extensions.get(id), activate: () => thenable(recorded.extensions.get(id)) };
  },
};

/** Fire a configuration change for the given changed keys (full names). */
export async function changeConfiguration(changed: string[]): Promise<void> {
  const event = {
    affectsConfiguration: (section: string) => changed.some((key) => key === section || key.startsWith(`${section}.`)),
  };
  for (const listener of recorded.configListeners) await listener(event);
}
