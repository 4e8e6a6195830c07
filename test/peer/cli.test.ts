/** `peertv peer` command line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const cli = (args: string[]) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['bin/peertv.js', 'peer', ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });

test('peertv peer --help', async () => {
  const r = await cli(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--upload-kbps/);
});

test('peertv peer: bad flags give one line and exit 2', async () => {
  for (const args of [
    [],
    ['--tracker', 'http://127.0.0.1:9'],
    ['--tracker', 'ftp://x', '--channel', 'demo'],
    ['--tracker', 'http://127.0.0.1:9', '--channel', 'Bad Id'],
    ['--tracker', 'http://127.0.0.1:9', '--channel', 'demo', '--mode', 'seeder'],
    ['--tracker', 'http://127.0.0.1:9', '--channel', 'demo', '--upload-kbps', '-5'],
    ['--tracker', 'http://127.0.0.1:9', '--channel', 'demo', '--rendition', '../x'],
  ]) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^peertv peer: /);
  }
});

test('peertv peer: an unreachable tracker (and no origin) is one line and exit 1', async () => {
  const r = await cli(['--tracker', 'http://127.0.0.1:9', '--channel', 'demo', '--loopback-only']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^peertv peer: origin-unavailable: /);
});
