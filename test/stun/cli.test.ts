/** `peertv stun` command line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { peertv } from '../helpers/process.ts';
import { StunServer } from '../../stun/index.ts';

test('peertv stun --help, bad flags, serve and stop', async () => {
  const help = await peertv(['stun', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--require-integrity/);
  for (const args of [
    ['--user', 'nopassword'],
    ['--port', '99999'],
    ['--bogus'],
    ['--alternate', 'example.org'],
    ['--alternate', '127.0.0.1'],
    ['--port', '3478', '--alternate', '127.0.0.2:3478'],
  ]) {
    const r = await peertv(['stun', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr.trim(), /^peertv stun: [^\n]+$/);
  }
  const ok = await peertv(['stun', '--port', '0'], { untilStdout: /^stun: udp \d+ tcp \d+/ });
  assert.match(ok.stdout, /^stun: udp \d+ tcp \d+ on 127\.0\.0\.1/);
  assert.equal(ok.code, 0, `SIGINT stops it cleanly: ${ok.stderr}`);
});

test('peertv stun --alternate serves RFC 5780; peertv nat finds no NAT on loopback', async () => {
  const alt = await peertv(['stun', '--port', '0', '--alternate', '127.0.0.2', '--no-tcp'], {
    untilStdout: /^stun: udp \d+ .*alternate 127\.0\.0\.2 port \d+/m,
  });
  assert.equal(alt.code, 0, alt.stderr);
  const server = new StunServer({
    host: '127.0.0.1',
    port: 0,
    tcp: false,
    alternate: { host: '127.0.0.2', port: 0 },
  });
  const { udp } = await server.listen();
  try {
    const r = await peertv(['nat', '--server', `127.0.0.1:${udp}`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { natType: string; mapping: string; filtering: string };
    assert.equal(result.natType, 'open');
    assert.equal(result.mapping, 'no-nat');
    assert.equal(result.filtering, 'endpoint-independent');
    const line = await peertv(['nat', '--server', `127.0.0.1:${udp}`]);
    assert.match(
      line.stdout,
      /^nat: open \(mapping no-nat, filtering endpoint-independent, local 127\.0\.0\.1:\d+, mapped 127\.0\.0\.1:\d+\)$/m,
    );
  } finally {
    await server.destroy();
  }
  for (const args of [[], ['--server', 'example.org'], ['--server', '127.0.0.1:0'], ['--timeout-ms', 'x']]) {
    const r = await peertv(['nat', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr.trim(), /^peertv nat: [^\n]+$/);
  }
});
