/** `peertv stun` command line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { peertv } from '../helpers/process.ts';

test('peertv stun --help, bad flags, serve and stop', async () => {
  const help = await peertv(['stun', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--require-integrity/);
  for (const args of [['--user', 'nopassword'], ['--port', '99999'], ['--bogus']]) {
    const r = await peertv(['stun', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr.trim(), /^peertv stun: [^\n]+$/);
  }
  const ok = await peertv(['stun', '--port', '0'], { untilStdout: /^stun: udp \d+ tcp \d+/ });
  assert.match(ok.stdout, /^stun: udp \d+ tcp \d+ on 127\.0\.0\.1/);
  assert.equal(ok.code, 0, `SIGINT stops it cleanly: ${ok.stderr}`);
});
