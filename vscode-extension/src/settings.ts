/**
 * The settings the sidecar receives. package.json's `segpilot.*` properties other than
 * `segpilot.server.*` are generated from the sidecar's own declarations
 * (scripts/gen_vscode_settings.py), so the keys are read from the manifest at run time and
 * no second list exists here. Only values the user has set are sent: a default from the
 * manifest must not hide a value from the sidecar's config file or environment.
 */

/** Settings of the extension itself (how to start the sidecar); never sent to it. */
export const EXTENSION_PREFIX = 'server.';

export interface ManifestProperty {
  type?: string | string[];
  default?: unknown;
}

/** What `WorkspaceConfiguration.inspect` tells about one key. */
export interface Inspected {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** The sidecar's flat keys (`maxItems`, `replCommand`, ...) from the manifest's properties. */
export function sidecarKeys(properties: Record<string, ManifestProperty>): string[] {
  return Object.keys(properties)
    .filter((key) => key.startsWith('segpilot.'))
    .map((key) => key.slice('segpilot.'.length))
    .filter((key) => !key.startsWith(EXTENSION_PREFIX));
}

/** The object sent as initializationOptions and in didChangeConfiguration: each key the
 * user set, at its most specific level; `null` (an unset path) is sent as null. */
export function sidecarSettings(
  keys: string[],
  inspect: (key: string) => Inspected | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const seen = inspect(key);
    if (seen === undefined) continue;
    for (const value of [seen.workspaceFolderValue, seen.workspaceValue, seen.globalValue]) {
      if (value !== undefined) {
        out[key] = value;
        break;
      }
    }
  }
  return out;
}
