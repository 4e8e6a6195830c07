/** `peertv peer` command line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { peertv } from '../helpers/process.ts';

const cli = (args: string[]) => peertv(['peer', ...args]);

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
    ['--tracker', 'http://127.0.0.1:9', '--channel', 'demo', '--stun', 'stun.example.org'],
    ['--tracker', 'http://127.0.0.1:9', '--channel', 'demo', '--nat-type', 'cone'],
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
