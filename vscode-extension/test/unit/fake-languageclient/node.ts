// A recording stand-in for vscode-languageclient/node: no process, answers from `script`.
export enum CloseAction {
  DoNotRestart = 1,
  Restart = 2,
}
export enum ErrorAction {
  Continue = 1,
  Shutdown = 2,
}
export enum State {
  Stopped = 1,
  Running = 2,
  Starting = 3,
}
export enum TransportKind {
  stdio = 0,
}
export const DidChangeConfigurationNotification = { type: { method: 'workspace/didChangeConfiguration' } };
export const ExecuteCommandRequest = { type: { method: 'workspace/executeCommand' } };
export const WorkDoneProgress = { type: { method: '$/progress' } };
export const WorkDoneProgressCreateRequest = { type: { method: 'window/workDoneProgress/create' } };
export const WorkDoneProgressCancelNotification = { type: { method: 'window/workDoneProgress/cancel' } };

type Method = string | { method: string };
const name = (m: Method) => (typeof m === 'string' ? m : m.method);

export const script = {
  /** Thrown by start() when set. */
  startError: undefined as Error | undefined,
  /** Answers to requests by method. */
  answers: new Map<string, (params: unknown) => unknown>(),
  clients: [] as LanguageClient[],
};

export function resetClients(): void {
  script.startError = undefined;
  script.answers.clear();
  script.clients.length = 0;
}

export class LanguageClient {
  running = false;
  stopped = 0;
  notifications: { method: string; params: unknown }[] = [];
  requests: { method: string; params: unknown }[] = [];
  private stateListeners: ((e: { oldState: State; newState: State }) => void)[] = [];
  readonly code2ProtocolConverter = { asUri: (uri: { scheme: string; fsPath: string }) => `${uri.scheme}://${uri.fsPath}` };

  constructor(
    readonly id: string,
    readonly name: string,
    readonly serverOptions: any,
    readonly clientOptions: any,
  ) {
    script.clients.push(this);
  }

  onDidChangeState(listener: (e: { oldState: State; newState: State }) => void) {
    this.stateListeners.push(listener);
    return { dispose() {} };
  }

  async start(): Promise<void> {
    if (script.startError) throw script.startError;
    this.running = true;
    for (const l of this.stateListeners) l({ oldState: State.Starting, newState: State.Running });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopped += 1;
  }

  errors: string[] = [];
  /** Handlers of requests from the server, by method. */
  handlers = new Map<string, (params: any) => unknown>();
  /** Progress handlers, by token. */
  progress = new Map<string | number, (value: any) => void>();

  onRequest(type: Method, handler: (params: any) => unknown) {
    this.handlers.set(name(type), handler);
    return { dispose: () => this.handlers.delete(name(type)) };
  }

  onProgress(_type: unknown, token: string | number, handler: (value: any) => void) {
    this.progress.set(token, handler);
    return { dispose: () => this.progress.delete(token) };
  }

  error(message: string): void {
    this.errors.push(message);
  }

  isRunning(): boolean {
    return this.running;
  }

  async sendRequest(method: Method, params: unknown): Promise<unknown> {
    this.requests.push({ method: name(method), params });
    const answer = script.answers.get(name(method));
    if (!answer) throw new Error(`no answer for ${name(method)}`);
    return answer(params);
  }

  async sendNotification(method: Method, params: unknown): Promise<void> {
    this.notifications.push({ method: name(method), params });
  }
}
