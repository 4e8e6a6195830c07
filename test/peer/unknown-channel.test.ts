/**
 * An unknown channel has its own code, not `tracker-unreachable`: `peertv peer --channel nosuch`
 * against a real tracker that is up prints `unknown-channel: …` and exits 1. (The engine's part is in
 * resilience.test.ts; the web player's in test/player/unknown-channel.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Tracker } from '../../tracker/index.ts';
import { peertv } from '../helpers/process.ts';

let tracker: Tracker;

before(async () => {
  tracker = new Tracker({});
  await tracker.listen(0);
});

after(async () => {
  await tracker?.destroy();
});

test('peertv peer --channel nosuch: unknown-channel, one line, exit 1', async () => {
  const r = await peertv(['peer', '--tracker', tracker.url, '--channel', 'nosuch', '--loopback-only'], {
    timeoutMs: 60_000,
  });
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^peertv peer: unknown-channel: channel nosuch not found on the tracker/);
  assert.doesNotMatch(r.stderr, /unreachable|unavailable/);
});
