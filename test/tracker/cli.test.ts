/** `peertv tracker` command line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { peertv } from '../helpers/process.ts';

const cli = (args: string[], untilStdout?: RegExp) => peertv(args, untilStdout ? { untilStdout } : {});

test('peertv tracker --help and bad flags', async () => {
  const help = await cli(['tracker', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--ice-server/);
  assert.match(help.stdout, /--policy NAME .*random .*chandelier/s);
  for (const args of [
    ['--policy', 'toString'],
    ['--ice-server', 'http://example.test'],
    ['--nat-probe', 'stun:127.0.0.1:3478'],
    ['--nat-probe', 'stun:127.0.0.1:3478,stun:127.0.0.1:3478'],
    ['--nat-probe', 'stun:127.0.0.1:3478,turn:127.0.0.2:3479'],
    ['--cors-origin', 'javascript:alert(1)'],
    ['--port', '70000'],
    ['--report-interval', '0'],
    ['--unknown'],
  ]) {
    const r = await cli(['tracker', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^peertv tracker: /);
  }
});

test('peertv tracker serves, and reports a port in use in one line', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as net.AddressInfo).port;
  const busy = await cli(['tracker', '--port', String(port)]);
  blocker.close();
  assert.equal(busy.code, 2);
  assert.match(busy.stderr, new RegExp(`tracker port ${port} is in use`));
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-tracker-cli-'));
  const ok = await cli(
    ['tracker', '--port', '0', '--data-dir', dataDir, '--policy', 'chandelier'],
    /dashboard/,
  );
  assert.match(ok.stdout, /^tracker: http:\/\/127\.0\.0\.1:\d+/);
  assert.match(ok.stdout, /policy chandelier\)/);
  assert.equal(ok.code, 0, `SIGINT stops it cleanly: ${ok.stderr}`);
});

test('unknown subcommand', async () => {
  const r = await cli(['nope']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command "nope"/);
});
