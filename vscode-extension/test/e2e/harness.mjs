// Start a real VS Code (code-server) with a fresh profile, the built .vsix installed, and a
// copy of lean_project/ as the workspace; drive it with headless Chromium (playwright-core).
// Everything it starts is stopped by `close()`; on failure `keep()` saves screenshots and
// the logs (extension host, sidecar) under the artifacts folder.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const EXTENSION = path.resolve(here, '..', '..');
export const REPO = path.resolve(EXTENSION, '..');

export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run the tests through scripts/test.sh or see the README)`);
  return value;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Poll `check` until it returns a truthy value; its last error or value is reported on timeout. */
export async function until(what, check, timeoutMs = 30_000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

function copyProject(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue; // .lake build output
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) copyProject(source, target);
    else fs.copyFileSync(source, target);
  }
}

export class Editor {
  /** @param {{settings: object | ((editor: Editor) => object), artifacts: string, extraFiles?: string[], venv?: string}} options */
  static async open(options) {
    const editor = new Editor(options);
    try {
      await editor.start();
    } catch (err) {
      await editor.keep('start');
      await editor.close();
      throw err;
    }
    return editor;
  }

  constructor({ settings, artifacts, extraFiles = [], venv }) {
    this.extraFiles = extraFiles;
    this.venv = venv;
    this.node24 = required('SEGPILOT_NODE24');
    this.codeServer = required('SEGPILOT_CODE_SERVER');
    this.chromium = required('SEGPILOT_CHROMIUM');
    this.vsix = process.env.SEGPILOT_VSIX || path.join(EXTENSION, 'segpilot.vsix');
    this.artifacts = artifacts;
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'segpilot-e2e-'));
    this.workspace = path.join(this.root, 'lean_project');
    this.userData = path.join(this.root, 'profile', 'data');
    this.extensions = path.join(this.root, 'profile', 'extensions');
    this.settingsFile = path.join(this.userData, 'User', 'settings.json');
    this.sidecarLog = path.join(this.root, 'sidecar.log');
    this.settings = typeof settings === 'function' ? settings(this) : settings;
    this.processes = [];
    this.serverOutput = [];
  }

  get env() {
    const tmp = path.join(this.root, 'tmp');
    fs.mkdirSync(tmp, { recursive: true });
    return {
      ...process.env,
      XDG_CONFIG_HOME: path.join(this.root, 'xdg', 'config'),
      XDG_DATA_HOME: path.join(this.root, 'xdg', 'data'),
      XDG_CACHE_HOME: path.join(this.root, 'xdg', 'cache'),
      TMPDIR: tmp,
      HOME: path.join(this.root, 'home'),
      // the sidecar's own config file and data stay inside the run folder too
      SEGPILOT_HOME: path.join(this.root, 'segpilot-home'),
      // no extension marketplace: code-server would query its default one over the network
      EXTENSIONS_GALLERY: '{}',
    };
  }

  writeSettings(extra = {}) {
    fs.mkdirSync(path.dirname(this.settingsFile), { recursive: true });
    const all = {
      'workbench.startupEditor': 'none',
      'security.workspace.trust.enabled': false,
      'telemetry.telemetryLevel': 'off',
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'update.mode': 'none',
      'editor.inlineSuggest.enabled': true,
      'workbench.secondarySideBar.defaultVisibility': 'hidden',
      'chat.disableAIFeatures': true,
      'workbench.tips.enabled': false,
      'files.autoSave': 'off',
      'files.watcherExclude': { '**/.venv/**': true },
      'terminal.integrated.gpuAcceleration': 'off', // terminal text in the DOM, for the test to read
      ...this.settings,
      ...extra,
    };
    fs.writeFileSync(this.settingsFile, JSON.stringify(all, null, 2));
  }

  codeServerArgs() {
    return [
      this.codeServer,
      '--auth', 'none',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--user-data-dir', this.userData,
      '--extensions-dir', this.extensions,
    ];
  }

  async start() {
    copyProject(path.join(REPO, 'lean_project'), this.workspace);
    for (const file of this.extraFiles) fs.copyFileSync(file, path.join(this.workspace, path.basename(file)));
    if (this.venv) fs.symlinkSync(this.venv, path.join(this.workspace, '.venv'));
    fs.mkdirSync(path.join(this.root, 'home'), { recursive: true });
    this.writeSettings();
    const config = path.join(this.root, 'code-server.yaml');
    fs.writeFileSync(config, 'auth: none\ncert: false\n');
    const install = spawnSync(this.node24, [...this.codeServerArgs(), '--config', config, '--install-extension', this.vsix], {
      env: this.env,
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (install.status !== 0 || !/successfully installed/.test(install.stdout)) {
      throw new Error(`installing ${this.vsix} failed (${install.status}):\n${install.stdout}\n${install.stderr}`);
    }
    this.port = await freePort();
    const server = spawn(
      this.node24,
      [...this.codeServerArgs(), '--config', config, '--bind-addr', `127.0.0.1:${this.port}`, this.workspace],
      { env: this.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    this.processes.push(server);
    for (const stream of [server.stdout, server.stderr]) stream.on('data', (chunk) => this.serverOutput.push(String(chunk)));
    const base = `http://127.0.0.1:${this.port}`;
    await until('code-server /healthz', async () => (await fetch(`${base}/healthz`)).ok, 60_000, 200);
    this.browser = await chromium.launch({
      executablePath: this.chromium,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'],
    });
    this.page = await this.browser.newPage({ viewport: { width: 1400, height: 900 } });
    this.consoleErrors = [];
    this.page.on('console', (m) => m.type() === 'error' && this.consoleErrors.push(m.text()));
    await this.page.goto(`${base}/?folder=${encodeURIComponent(this.workspace)}`);
    await this.page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    await this.page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60_000 });
  }

  /** Open a file of the workspace in the editor (explorer click) and wait for its language. */
  async openFile(name) {
    const row = this.page.locator('.explorer-folders-view .monaco-list-row', { hasText: name }).first();
    await row.click();
    await this.page.waitForSelector(`.tab.active[aria-label*="${name}"], .tab.active .label-name:has-text("${name}")`, { timeout: 30_000 });
  }

  /** The segpilot status bar item's text, or '' while it is not there. */
  async statusText() {
    return this.page.evaluate(() => {
      const items = [...document.querySelectorAll('.statusbar-item')];
      const ours = items.find((e) => /segpilot/.test(e.textContent ?? ''));
      return ours ? (ours.textContent ?? '').trim() : '';
    });
  }

  async waitForStatus(pattern, timeoutMs = 120_000) {
    return until(`status bar ${pattern}`, async () => {
      const text = await this.statusText();
      return pattern.test(text) ? text : false;
    }, timeoutMs, 200);
  }

  /** Put the cursor at a 1-based line and column with "Go to Line" (Ctrl+G), e.g. 16:3. */
  async goTo(line, column) {
    await this.page.locator('.editor-instance .view-lines').first().click();
    await this.page.keyboard.press('Control+g');
    await this.page.waitForSelector('.quick-input-widget:not(.hidden) input', { timeout: 10_000 });
    await this.page.keyboard.type(`${line}:${column}`);
    await this.page.keyboard.press('Enter');
    await until(`cursor at ${line}:${column}`, async () => {
      const text = await this.page.evaluate(() => {
        const items = [...document.querySelectorAll('.statusbar-item')];
        const at = items.find((e) => /Ln \d+, Col \d+/.test(e.textContent ?? ''));
        return at ? at.textContent : '';
      });
      return text.includes(`Ln ${line}, Col ${column}`);
    }, 10_000);
  }

  /** Give the editor the keyboard focus without moving its cursor. */
  async focusEditor() {
    await this.page.evaluate(() => {
      if (document.activeElement?.closest('.monaco-editor')) return;
      const group = document.querySelector('.editor-group-container.active') ?? document;
      const input = group.querySelector('.monaco-editor .native-edit-context, .monaco-editor textarea.inputarea');
      if (!input) throw new Error('no editor to focus');
      input.focus();
    });
  }

  /** Wait until the active editor has unsaved changes (an edit arrived). */
  async waitForDirty(timeoutMs = 60_000) {
    await this.page.waitForSelector('.tab.active.dirty', { timeout: timeoutMs });
  }

  /** Save the active editor (Ctrl+S with the editor focused). */
  async save() {
    await this.focusEditor();
    await this.page.keyboard.press('Control+s');
  }

  /** Write workspace settings (`.vscode/settings.json` of the workspace folder, over the
   * profile's user settings); VS Code picks the file up as it changes. */
  writeWorkspaceSettings(settings) {
    fs.mkdirSync(path.join(this.workspace, '.vscode'), { recursive: true });
    fs.writeFileSync(path.join(this.workspace, '.vscode', 'settings.json'), JSON.stringify(settings, null, 2));
  }

  /** The pids of the processes this run started (code-server and everything below it). */
  descendants() {
    const parent = new Map();
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      } catch {
        // the process ended meanwhile
      }
    }
    const roots = new Set(this.processes.map((p) => p.pid));
    const ours = [];
    for (const pid of parent.keys()) {
      for (let p = pid; p > 1; p = parent.get(p) ?? 0) {
        if (roots.has(p)) {
          ours.push(pid);
          break;
        }
      }
    }
    return ours;
  }

  /** The pid of the sidecar the extension started (among this run's processes), if any. */
  sidecarPid() {
    return this.descendants().find((pid) => {
      try {
        const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv.some((a) => a.endsWith('segpilot')) && argv.includes('serve');
      } catch {
        return false;
      }
    });
  }

  /** The text of the integrated terminals, their rows joined (wrapped lines come out whole). */
  async terminalText() {
    return this.page.evaluate(() =>
      [...document.querySelectorAll('.terminal-wrapper .xterm-rows')].map((rows) => rows.textContent ?? '').join('\n'),
    );
  }

  /** The texts of the notification toasts shown now (message and buttons). */
  async notifications() {
    return this.page.evaluate(() =>
      [...document.querySelectorAll('.notifications-toasts .notification-list-item')].map((item) => ({
        message: item.querySelector('.notification-list-item-message')?.textContent ?? '',
        buttons: [...item.querySelectorAll('.monaco-button, .action-label')].map((b) => b.textContent || b.getAttribute('aria-label') || ''),
      })),
    );
  }

  /** Run a command through the command palette by its title. */
  async command(title) {
    await this.page.keyboard.press('F1');
    await this.page.waitForSelector('.quick-input-widget:not(.hidden) input', { timeout: 10_000 });
    await this.page.keyboard.type(title);
    const row = this.page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
    await row.waitFor({ timeout: 10_000 });
    await this.page.keyboard.press('Enter');
  }

  /** The ghost text shown in the editor: the inline part and the lines below it. */
  async ghostText() {
    return this.page.evaluate(() => {
      const inline = [...document.querySelectorAll('.view-lines .ghost-text-decoration')].map((e) => e.textContent ?? '');
      const below = [...document.querySelectorAll('.ghost-text .view-line')].map((e) => e.textContent ?? '');
      return { inline: inline.join(''), below: below.map((l) => l.replace(/\u00a0/g, ' ')) };
    });
  }

  async hasGhostText() {
    return this.page.evaluate(() => document.querySelectorAll('.ghost-text-decoration, .ghost-text').length > 0);
  }

  /** The extension host's log files and our output channel (the `segpilot` log). */
  extensionLogs() {
    const logs = path.join(this.userData, 'logs');
    const found = [];
    const walk = (dir) => {
      if (!fs.existsSync(dir)) return;
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else found.push(p);
      }
    };
    walk(logs);
    return found;
  }

  /** Our output channel's text so far (VS Code writes a LogOutputChannel to a file). */
  outputLog() {
    return this.extensionLogs()
      .filter((p) => /segpilot/i.test(path.basename(p)) && p.endsWith('.log'))
      .map((p) => fs.readFileSync(p, 'utf8'))
      .join('\n');
  }

  async waitForLog(pattern, timeoutMs = 60_000) {
    return until(`output log ${pattern}`, () => {
      const text = this.outputLog();
      const match = text.match(pattern);
      return match ?? false;
    }, timeoutMs, 200);
  }

  async screenshot(file) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await this.page.screenshot({ path: file });
  }

  /** A screenshot of the top of the active editor (`lines` lines), e.g. for the README. */
  async editorScreenshot(file, lines = 8) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const box = await this.page.locator('.editor-group-container.active').first().boundingBox();
    const lineHeight = await this.page.evaluate(() => document.querySelector('.view-line')?.getBoundingClientRect().height ?? 19);
    const height = Math.min(box.height, 60 + lines * lineHeight);
    await this.page.screenshot({ path: file, clip: { x: box.x, y: box.y, width: Math.min(box.width, 760), height } });
  }

  /** Save screenshots and logs for a failed test. */
  async keep(label) {
    const dir = path.join(this.artifacts, label.replace(/[^\w.-]+/g, '_'));
    fs.mkdirSync(dir, { recursive: true });
    try {
      if (this.page) await this.page.screenshot({ path: path.join(dir, 'screen.png') });
    } catch {
      // the browser may be gone
    }
    for (const file of this.extensionLogs()) {
      const rel = path.relative(path.join(this.userData, 'logs'), file);
      fs.mkdirSync(path.dirname(path.join(dir, 'logs', rel)), { recursive: true });
      fs.copyFileSync(file, path.join(dir, 'logs', rel));
    }
    if (fs.existsSync(this.sidecarLog)) fs.copyFileSync(this.sidecarLog, path.join(dir, 'sidecar.log'));
    fs.writeFileSync(path.join(dir, 'code-server.log'), this.serverOutput.join(''));
    fs.writeFileSync(path.join(dir, 'console-errors.log'), (this.consoleErrors ?? []).join('\n'));
    process.stderr.write(`e2e artifacts kept in ${dir}\n`);
  }

  async close() {
    try {
      await this.browser?.close();
    } catch {
      // already gone
    }
    for (const child of this.processes) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        process.kill(-child.pid, 'SIGTERM'); // its process group: code-server, extension host, sidecar
      } catch {
        continue;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }, 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
