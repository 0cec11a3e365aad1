// Bundle each unit test with esbuild, the `vscode` module replaced by a small mock and
// vscode-languageclient by a recording fake, then run them with Node's test runner.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'out-test');
fs.rmSync(out, { recursive: true, force: true });
const tests = fs.readdirSync(path.join(root, 'test', 'unit')).filter((f) => f.endsWith('.test.ts'));
await build({
  entryPoints: tests.map((f) => path.join(root, 'test', 'unit', f)),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outdir: out,
  outExtension: { '.js': '.cjs' },
  logLevel: 'warning',
  alias: {
    vscode: path.join(root, 'test', 'unit', 'vscode-mock.ts'),
    'vscode-languageclient': path.join(root, 'test', 'unit', 'fake-languageclient'),
  },
});
const run = spawnSync(process.execPath, ['--test', ...tests.map((f) => path.join(out, f.replace(/\.ts$/, '.cjs')))], {
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
