/**
 * Faults around the engine, on a ManualClock: the tracker restarting (a join refused as
 * `unknown-channel` until the source registers again is retried with backoff), an unknown channel at
 * start (final, its own code), the tracker unreachable at start (HTTP from the origin, joined once it
 * answers), and the origin unable to serve attestations for a while (bytes held and verified later,
 * the sender not blamed, nothing downloaded twice).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { JoinRequest } from '../../protocol/index.ts';
import { EngineError } from '../../peer/core/engine.ts';
import type { FakeTrackerConnection } from './fakes.ts';
import {
  addPeer,
  assertVerified,
  demand,
  give,
  linked,
  makePeer,
  neighbour,
  R,
  settled,
  world,
  type World,
} from './harness.ts';

/** Records when each join request leaves `conn` (the fake tracker only records the accepted ones). */
function joinAttempts(w: World, conn: FakeTrackerConnection): number[] {
  const at: number[] = [];
  const join = conn.join.bind(conn);
  conn.join = (req: JoinRequest) => {
    at.push(w.clock.now());
    return join(req);
  };
  return at;
}

describe('tracker restart', () => {
  test('after a reconnection, a join refused as unknown-channel is retried with backoff until the channel is back', async (t) => {
    const w = world(t);
    // Two viewers with opposite jitter draws: their retries do not land in the same instants.
    const A = await addPeer(w, 'A', { random: () => 0 });
    const B = await addPeer(w, 'B', { random: () => 0.999 });
    await linked(w, A, B);
    const attemptsA = joinAttempts(w, A.conn!);
    const attemptsB = joinAttempts(w, B.conn!);
    // kill -9: the sessions drop; the restarted tracker does not know the channel until the source
    // registers again, 7 s after the viewers are back.
    const channel = w.tracker.channel;
    w.tracker.disconnect(A.id);
    w.tracker.disconnect(B.id);
    w.tracker.channel = { ...channel, id: 'not-yet' };
    await w.sim.run(1000);
    const reconnectedAt = w.clock.now();
    A.conn!.reconnect();
    B.conn!.reconnect();
    await w.sim.run(7000);
    assert.ok(!w.tracker.peers.has(A.id) && !w.tracker.peers.has(B.id), 'not yet');
    w.tracker.channel = channel;
    const registeredAt = w.clock.now();
    await w.sim.until(
      () => w.tracker.peers.has(A.id) && w.tracker.peers.has(B.id),
      10_000,
      'both viewers back in the tracker',
    );
    const backAfterMs = w.clock.now() - registeredAt;
    t.diagnostic(
      `back ${backAfterMs} ms after the channel re-registered; join attempts A ${attemptsA.length}, B ${attemptsB.length}`,
    );
    // The retry delay is capped at 2 s (+50 % jitter at most), plus the ack's round trip.
    assert.ok(backAfterMs <= 3000 + 2 * w.tracker.opts.latencyMs, `back after ${backAfterMs} ms`);
    for (const at of [attemptsA, attemptsB]) {
      assert.equal(at[0], reconnectedAt, 'joins at once on reconnection');
      const gaps = at.slice(1).map((x, i) => x - at[i]!);
      // Exponential backoff (no hot loop), within ±50 % of 250 ms · 2^k capped at 2 s, plus a round trip.
      gaps.forEach((g, k) => {
        const base = Math.min(2000, 250 * 2 ** k);
        assert.ok(g >= base * 0.5 && g <= base * 1.5 + 2 * w.tracker.opts.latencyMs + 1, `gap ${k}: ${g} ms`);
      });
      assert.ok(at.length <= 14, `${at.length} attempts in 8 s`);
    }
    assert.notDeepEqual(attemptsA.slice(1), attemptsB.slice(1), 'jitter spreads the retries');
    // Nothing reported as an error while the tracker was warming up; reports flow again.
    assert.deepEqual(
      A.errors.map((e) => e.code),
      [],
    );
    await w.sim.run(w.tracker.opts.reportIntervalMs + 100);
    assert.ok(w.tracker.reportsOf(A.id).length > 0);
    assert.ok(neighbour(A, B)?.open, 'the P2P link stayed up throughout');
  });

  test('a retry stops when the connection drops again, and starts over on the next reconnection', async (t) => {
    const w = world(t);
    const A = await addPeer(w, 'A', { random: () => 0.5 });
    const attempts = joinAttempts(w, A.conn!);
    const channel = w.tracker.channel;
    w.tracker.disconnect(A.id);
    w.tracker.channel = { ...channel, id: 'not-yet' };
    A.conn!.reconnect();
    await w.sim.run(2000);
    const before = attempts.length;
    w.tracker.disconnect(A.id); // no session: nothing to drop, but the connection goes down
    A.conn!.lost('transport close');
    await w.sim.run(10_000);
    assert.equal(attempts.length, before, 'no attempts while disconnected');
    w.tracker.channel = channel;
    A.conn!.reconnect();
    await w.sim.until(() => w.tracker.peers.has(A.id), 1000, 'joined');
  });
});

describe('unknown channel', () => {
  test('at start, a channel the tracker does not know is final: start() rejects with unknown-channel', async (t) => {
    const w = world(t);
    w.tracker.channel = { ...w.tracker.channel, id: 'elsewhere' };
    // No origin given: the engine needs the tracker's answer to start (a Node peer).
    const A = makePeer(w, 'A', { originUrl: undefined });
    const attempts = joinAttempts(w, A.conn!);
    let error: unknown;
    await w.sim.resolve(
      A.engine.start().catch((e: unknown) => (error = e)),
      5000,
    );
    assert.ok(error instanceof EngineError, String(error));
    assert.equal(error.code, 'unknown-channel');
    assert.match(error.message, /channel chan not found on the tracker/);
    assert.deepEqual(A.errors, [], 'not reported as the tracker being unavailable');
    await w.sim.run(10_000);
    assert.equal(attempts.length, 1, 'not retried');
  });

  test('with the origin given, start() does not wait for the join; an unknown channel is said once, not retried', async (t) => {
    // The tracker answers after 8 s (the web player's case: a tracker slow or silent at join).
    const w = world(t, { tracker: { latencyMs: 8000 } });
    w.tracker.channel = { ...w.tracker.channel, id: 'elsewhere' };
    const A = makePeer(w, 'A');
    const attempts = joinAttempts(w, A.conn!);
    const t0 = w.clock.now();
    await w.sim.resolve(A.engine.start(), 5000);
    assert.ok(A.engine.ready);
    assert.ok(w.clock.now() - t0 < 1000, `ready after ${w.clock.now() - t0} ms`);
    assert.equal(A.engine.peerId, '', 'not joined yet');
    const d = demand(w, A, 3, 3000);
    assert.equal((await settled(w, d)).source, 'http');
    await w.sim.run(20_000);
    assert.deepEqual(
      A.errors.map((e) => e.code),
      ['unknown-channel'],
    );
    assert.equal(attempts.length, 1, 'not retried');
  });

  test('a tracker unreachable at start: plays from the origin and joins once the tracker answers', async (t) => {
    const w = world(t);
    const A = makePeer(w, 'A', { random: () => 0.5 });
    A.conn!.connected = false;
    await w.sim.resolve(A.engine.start(), 5000);
    assert.deepEqual(
      A.errors.map((e) => e.code),
      ['tracker-unreachable'],
    );
    const d = demand(w, A, 3, 3000);
    assert.equal((await settled(w, d)).source, 'http');
    await w.sim.run(5000);
    A.conn!.connected = true; // the connection comes up (a first connection: no 'reconnected')
    await w.sim.until(() => A.engine.peerId === A.id, 3000, 'joined in the background');
    assert.ok(w.tracker.peers.has(A.id));
  });
});

describe('attestations unavailable', () => {
  test('the origin cannot serve attestations for 10 s: bytes from an honest peer are held, verified once it can, never fetched twice; the sender is not blamed', async (t) => {
    const w = world(t, { segments: 8 });
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B');
    await linked(w, A, B);
    give(w, A, 4, 5, 6, 7);
    await w.sim.until(() => !!neighbour(B, A)?.holdsSegment(R, 7), 1000, 'have');
    // The origin goes down for attestations (and the tracker pushed none for these segments).
    const restore = w.origin.setProfile('.json', { fail: true });
    const ds = [4, 5, 6, 7].map((seq) => demand(w, B, seq, 30_000));
    await w.sim.run(10_000);
    assert.ok(
      ds.every((d) => !d.result),
      'nothing delivered unverified',
    );
    const rejected = B.rejected.length;
    const requests = [4, 5, 6, 7].map((seq) => A.engine.uploads && w.origin.segmentRequests(R, seq).length);
    t.diagnostic(
      `while attestations failed for 10 s: ${rejected} rejections, P2P bytes uploaded by A ${A.engine.uploads.uploadedBytes}, HTTP segment requests ${requests.join('/')}`,
    );
    assert.equal(rejected, 0, 'held, not rejected');
    assert.equal(A.engine.uploads.uploadedBytes, 4 * 100_000, 'each segment came once from A');
    assert.deepEqual(requests, [0, 0, 0, 0], 'and never from the origin');
    restore();
    for (const d of ds) {
      await settled(w, d, 10_000);
      assertVerified(w, d);
      assert.equal(d.result!.source, 'p2p');
    }
    assert.ok(neighbour(B, A)?.open, 'the sender was not blamed');
    assert.deepEqual(B.closed, []);
    assert.deepEqual(w.tracker.complaints, []);
    assert.equal(A.engine.uploads.uploadedBytes, 4 * 100_000);
  });

  test('a pushed attestation releases held bytes at once', async (t) => {
    const w = world(t, { segments: 8 });
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B');
    await linked(w, A, B);
    give(w, A, 5);
    await w.sim.until(() => !!neighbour(B, A)?.holdsSegment(R, 5), 1000, 'have');
    w.origin.setProfile('.json', { fail: true });
    const d = demand(w, B, 5, 30_000);
    await w.sim.run(3000);
    assert.equal(d.result, undefined);
    const pushedAt = w.clock.now();
    w.tracker.pushAttestation(w.origin.segment(R, 5).attestation);
    await settled(w, d, 1000);
    assertVerified(w, d);
    assert.ok(
      d.at! - pushedAt <= 2 * w.tracker.opts.latencyMs + 1,
      `delivered ${d.at! - pushedAt} ms after the push`,
    );
  });

  test('held bytes are bounded: beyond unverifiedHoldSegments the oldest is dropped and fetched again later', async (t) => {
    const w = world(t, { segments: 8 });
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B', { unverifiedHoldSegments: 2 });
    await linked(w, A, B);
    give(w, A, 4, 5, 6, 7);
    await w.sim.until(() => !!neighbour(B, A)?.holdsSegment(R, 7), 1000, 'have');
    const restore = w.origin.setProfile('.json', { fail: true });
    demand(w, B, 4, 60_000);
    await w.sim.run(500);
    demand(w, B, 5, 60_000);
    await w.sim.run(500);
    demand(w, B, 6, 60_000);
    await w.sim.run(500);
    assert.deepEqual(
      B.rejected.map((r) => [r.mediaSequence, r.reason]),
      [[4, 'attestation-unavailable']],
      'the oldest was dropped',
    );
    restore();
    await w.sim.until(() => [4, 5, 6].every((s) => B.store.has(R, s)), 10_000, 'all three verified');
  });
});
