/**
 * The peer engine on a ManualClock and a MemoryNetwork, against a fake origin (real signed segments)
 * and a fake tracker: the deadline-aware scheduler, P2P → HTTP switches, first tier, eviction,
 * integrity against poisoning neighbours, protocol violations, upload management and the headless
 * player. Deterministic: nothing waits on real time except WebCrypto, which `Sim` lets finish.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { WIRE_VERSION, type WireMessage } from '../../protocol/index.ts';
import { DEFAULT_ENGINE } from '../../peer/core/engine.ts';
import { HeadlessPlayer, type PlayerOptions } from '../../peer/core/player.ts';
import { RawPeer, type RawPeerOptions } from './fakes.ts';
import {
  R,
  SEG,
  addPeer,
  assertVerified as assertVerifiedBytes,
  demand,
  give,
  linked,
  makePeer,
  neighbour,
  pid,
  push,
  rawPeer,
  request,
  settled,
  sha,
  world,
  type Demand,
  type Peer,
  type PeerOpts,
  type World,
} from './harness.ts';

/** Clock times are sums of fractional delays: compare them with a tolerance. */
const near = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual}, expected ${expected}`);

/** Verified, and in time. */
function assertVerified(w: World, d: Demand): void {
  assertVerifiedBytes(w, d);
  assert.ok(d.at! <= d.deadlineAt, `loaded at ${d.at}, deadline ${d.deadlineAt}`);
}

/** Requests for `seq` that reached the origin. */
const httpGets = (w: World, seq: number) => w.origin.segmentRequests(R, seq);

// ---------------------------------------------------------------------------------------------------

describe('scheduler: P2P or HTTP against the deadline', () => {
  async function pair(t: TestContext, b: PeerOpts = {}) {
    const w = world(t, { tracker: { introduceOnJoin: true } });
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B', b);
    await linked(w, A, B);
    give(w, A, 2, 3);
    // The tracker pushed their attestations: B knows their exact size.
    push(
      w,
      [2, 3].map((s) => w.origin.segment(R, s).attestation),
    );
    await w.sim.until(() => !!neighbour(B, A)?.holdsSegment(R, 3), 1000, 'have 3');
    await w.sim.run(20);
    return { w, A, B };
  }

  test('a segment a neighbour holds is fetched P2P when the transfer fits before the deadline', async (t) => {
    const { w, A, B } = await pair(t);
    const d = demand(w, B, 3, 5000);
    const r = await settled(w, d);
    assert.equal(r.source, 'p2p');
    assertVerified(w, d);
    assert.equal(httpGets(w, 3).length, 0, 'the origin never sent it');
    assert.deepEqual(
      B.loaded.map((l) => [l.mediaSequence, l.source, l.from]),
      [[3, 'p2p', A.id]],
    );
    assert.equal(A.engine.uploads.uploadedBytes, SEG);
    assert.equal(B.engine.p2pBytes, SEG);
    assert.equal(B.engine.httpBytes, 0);
    assert.ok(B.store.has(R, 3), 'B keeps it for its own neighbours');
  });

  /** The scheduler's P2P estimate for a whole segment from `a` at `b` (before any measurement). */
  const p2pEstimateMs = (b: Peer, a: Peer) => {
    const n = neighbour(b, a)!;
    return n.firstByteMs.value + (SEG / n.throughput.value) * 1000;
  };

  test('over HTTP when the deadline is too close for the transfer plus the safety margin', async (t) => {
    const { w, A, B } = await pair(t);
    // A deadline the estimated transfer fits, but not with the margin.
    const inMs = p2pEstimateMs(B, A) + B.engine.opts.safetyMarginMs / 2;
    const d = demand(w, B, 3, inMs);
    const r = await settled(w, d);
    assert.equal(r.source, 'http');
    assertVerified(w, d);
    assert.equal(A.requests.length, 0, 'no request reached the neighbour');
    assert.equal(httpGets(w, 3).length, 1);
  });

  test('the same deadline goes P2P with a smaller safety margin', async (t) => {
    const { w, A, B } = await pair(t, { safetyMarginMs: 100 });
    const inMs = p2pEstimateMs(B, A) + DEFAULT_ENGINE.safetyMarginMs / 2;
    const d = demand(w, B, 3, inMs);
    const r = await settled(w, d);
    assert.equal(r.source, 'p2p');
    assertVerified(w, d);
    assert.deepEqual(
      A.requests.map((q) => q.seq),
      [3],
    );
    assert.equal(httpGets(w, 3).length, 0);
  });

  test('over HTTP, without asking, when the neighbour is measured too slow for the deadline', async (t) => {
    const { w, A, B } = await pair(t);
    w.net.setUploadBandwidth(A.id, 20_000); // 100 kB take 5 s
    // A generous deadline: P2P, which measures the neighbour's throughput.
    const d2 = demand(w, B, 2, 20_000);
    assert.equal((await settled(w, d2)).source, 'p2p');
    assertVerified(w, d2);
    const measured = neighbour(B, A)!.throughput.value;
    assert.ok(measured < 30_000, `measured ${measured} B/s`);
    // 3 s: the neighbour would need ~5 s. HTTP, and the neighbour is not even asked.
    const d3 = demand(w, B, 3, 3000);
    const r = await settled(w, d3);
    assert.equal(r.source, 'http');
    assertVerified(w, d3);
    assert.deepEqual(
      A.requests.map((q) => q.seq),
      [2],
    );
    assert.equal(httpGets(w, 3).length, 1);
  });

  test('a neighbour slower than it looked is abandoned for HTTP in time (too slow, not stalled)', async (t) => {
    const { w, A, B } = await pair(t, { p2pStallMs: 60_000 });
    w.net.setUploadBandwidth(A.id, 25_000); // a chunk every ~650 ms: progress, but 4 s for 100 kB
    const d = demand(w, B, 3, 3000);
    const r = await settled(w, d);
    assert.equal(r.source, 'http');
    assertVerified(w, d);
    assert.deepEqual(
      A.requests.map((q) => q.seq),
      [3],
      'P2P was tried first (optimistic estimate)',
    );
    await w.sim.run(100);
    assert.equal(A.cancels.length, 1, 'and cancelled');
    assert.ok(neighbour(B, A)!.bytesReceived > 0, 'the neighbour was delivering');
    const get = httpGets(w, 3)[0]!;
    assert.ok(get.at < d.deadlineAt - 700, `switched at ${get.at}`);
    assert.deepEqual(B.badStores, []);
  });
});

describe('P2P stall', () => {
  test('a neighbour going silent mid-transfer is cancelled and the segment fetched over HTTP in time', async (t) => {
    const w = world(t);
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B');
    await linked(w, A, B);
    give(w, A, 3);
    await w.sim.until(() => !!neighbour(B, A)?.holdsSegment(R, 3), 1000, 'have 3');
    w.net.setUploadBandwidth(A.id, 50_000); // 2 s for the segment
    const d = demand(w, B, 3, 8000);
    const n = neighbour(B, A)!;
    await w.sim.until(() => n.bytesReceived > 0, 2000, 'first chunk');
    const lastProgressAt = w.clock.now();
    w.net.partition(A.id, B.id);
    const r = await settled(w, d);
    assert.equal(r.source, 'http');
    assertVerified(w, d);
    assert.ok(n.bytesReceived < SEG, 'the P2P transfer never completed');
    const get = httpGets(w, 3)[0]!;
    const stall = B.engine.opts.p2pStallMs;
    assert.ok(get.at > lastProgressAt + stall, `HTTP at ${get.at}: not before the stall timeout`);
    assert.ok(get.at <= lastProgressAt + stall + 2 * B.engine.opts.schedulerTickMs, `HTTP at ${get.at}`);
    assert.deepEqual(
      B.loaded.map((l) => l.source),
      ['http'],
    );
    assert.equal(B.rejected.length, 0);
    // The link heals: the late chunks of the cancelled transfer are ignored, nothing is stored twice.
    w.net.heal(A.id, B.id);
    await w.sim.run(3000);
    assert.equal(B.loaded.length, 1);
    assert.deepEqual(B.badStores, []);
  });
});

describe('neighbours and tracker come and go', () => {
  test('a neighbour leaving mid-transfer: the segment comes over HTTP at once', async (t) => {
    const w = world(t);
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B');
    await linked(w, A, B);
    give(w, A, 3);
    await w.sim.until(() => !!neighbour(B, A)?.holdsSegment(R, 3), 1000, 'have 3');
    w.net.setUploadBandwidth(A.id, 50_000);
    const d = demand(w, B, 3, 6000);
    await w.sim.until(() => neighbour(B, A)!.bytesReceived > 0, 2000, 'first chunk');
    const leftAt = w.clock.now();
    A.engine.destroy();
    const r = await settled(w, d);
    assert.equal(r.source, 'http');
    assertVerified(w, d);
    const get = httpGets(w, 3)[0]!;
    assert.ok(get.at <= leftAt + 2 * w.net.config.latencyMs + 1, `HTTP at ${get.at}, A left at ${leftAt}`);
    assert.deepEqual(
      B.closed.map((c) => c.id),
      [A.id],
    );
  });

  test('losing the tracker keeps P2P links; on reconnection the engine joins again and reports', async (t) => {
    const w = world(t);
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B');
    await linked(w, A, B);
    give(w, A, 3);
    w.tracker.disconnect(A.id);
    await w.sim.run(3000);
    const d = demand(w, B, 3, 5000);
    assert.equal((await settled(w, d)).source, 'p2p', 'the link outlives the tracker session');
    assert.equal(w.tracker.joins.length, 2);
    const reconnectedAt = w.clock.now();
    A.conn!.reconnect();
    await w.sim.run(w.tracker.opts.reportIntervalMs + 100);
    assert.equal(w.tracker.joins.length, 3, 'joined again');
    assert.ok(w.tracker.peers.has(A.id), 'back in the tracker');
    const fresh = w.tracker.reports.filter((r) => r.peerId === A.id && r.at > reconnectedAt);
    assert.ok(fresh.length >= 1, 'reports resume');
    assert.equal(fresh.at(-1)!.report.uploadedBytes, SEG);
    assert.ok(neighbour(A, B)?.open, 'same link');
    assert.deepEqual(B.connected, [A.id]);
  });

  test('at its cap, a peer the tracker recommends replaces the link it no longer pairs us with', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const cap = { maxNeighbours: 2 };
    const [A, B, C, D] = [
      await addPeer(w, 'A', cap),
      await addPeer(w, 'B', cap),
      await addPeer(w, 'C', cap),
      await addPeer(w, 'D', cap),
    ];
    w.tracker.introduce(A.id, B.id);
    w.tracker.introduce(A.id, C.id);
    await linked(w, A, B);
    await linked(w, A, C);
    // Still recommended, both: D finds no room at A.
    w.tracker.introduce(A.id, D.id);
    await w.sim.run(3000);
    assert.equal(neighbour(A, D), undefined, 'no room while both links are recommended');
    // The tracker drops A–C (it keeps working meanwhile) and recommends D again: C makes way.
    w.tracker.unpair(A.id, C.id);
    await w.sim.run(100);
    assert.ok(neighbour(A, C)?.open, 'an unrecommended link stays while there is room for it');
    w.tracker.introduce(A.id, D.id);
    await linked(w, A, D);
    assert.equal(neighbour(A, C), undefined, 'C made way');
    assert.ok(neighbour(A, B)?.open, 'B, still recommended, stays');
  });

  test('a tracker that cannot be reached: HTTP only from the given origin, with a tracker-unreachable error', async (t) => {
    const w = world(t);
    const A = makePeer(w, 'A');
    A.conn!.connected = false; // the join request fails
    await w.sim.resolve(A.engine.start(), 10_000);
    assert.deepEqual(
      A.errors.map((e) => e.code),
      ['tracker-unreachable'],
    );
    assert.match(A.errors[0]!.message, /not connected/);
    const d = demand(w, A, 3, 3000);
    assert.equal((await settled(w, d)).source, 'http');
    assertVerified(w, d);
    // (An unknown channel at start is final instead: see resilience.test.ts.)
  });
});

describe('first tier', () => {
  test('a first-tier peer pulls a fresh segment as soon as its attestation is pushed; others get it P2P', async (t) => {
    const w = world(t, { tracker: { firstTier: [pid('A')] } });
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B');
    assert.equal(A.engine.firstTier, true);
    assert.equal(B.engine.firstTier, false);
    await linked(w, A, B);
    // At start the first tier took the newest two segments of the playlist.
    await w.sim.until(() => A.store.has(R, 2) && A.store.has(R, 3), 2000, 'first tier catch-up');
    assert.equal(B.store.count, 0, 'a non-first-tier peer fetches nothing unasked');

    const publishedAt = w.clock.now();
    push(w, w.origin.publish()); // seq 4
    await w.sim.until(() => A.store.has(R, 4), 2000, 'A has 4');
    const gets = httpGets(w, 4);
    assert.equal(gets.length, 1);
    near(gets[0]!.at, publishedAt + w.tracker.opts.latencyMs, 'fetched on the push, not the next poll');
    assert.deepEqual(
      A.loaded.filter((l) => l.mediaSequence === 4).map((l) => l.source),
      ['http'],
    );
    // Announced: B sees it without asking.
    await w.sim.until(() => !!neighbour(B, A)?.holdsSegment(R, 4), 500, 'have 4 at B');

    const d = demand(w, B, 4, 4000);
    assert.equal((await settled(w, d)).source, 'p2p');
    assertVerified(w, d);
    assert.equal(httpGets(w, 4).length, 1, 'the origin served segment 4 once');
    assert.equal(w.origin.served.segment.bytes, 3 * SEG, 'segments 2, 3 and 4, once each');

    // A first-tier peer does not wait for neighbours on a demand: it is the one feeding them.
    const d1 = demand(w, A, 1, 5000);
    assert.equal((await settled(w, d1)).source, 'http');
    near(httpGets(w, 1)[0]!.at, d1.deadlineAt - 5000, 'fetched at once');

    // Reports are valid and say who fed whom.
    await w.sim.run(w.tracker.opts.reportIntervalMs + 100);
    assert.ok(w.tracker.reports.length > 0, 'peers report');
    assert.deepEqual(
      w.tracker.reports.filter((r) => !r.valid),
      [],
    );
    const last = w.tracker.reportsOf(B.id).at(-1)!;
    assert.equal(last.receivedFrom[A.id], SEG);
    assert.equal(last.p2pBytes, SEG);
    assert.deepEqual(last.held, { first: 4, last: 4 });
  });

  test('a peer made first tier by a neighbours update starts pulling fresh segments', async (t) => {
    const w = world(t);
    const A = await addPeer(w, 'A');
    const tiers: boolean[] = [];
    A.engine.on('first-tier', (v) => tiers.push(v));
    push(w, w.origin.publish()); // 4
    await w.sim.run(500);
    assert.equal(httpGets(w, 4).length, 0, 'not first tier: nothing fetched');
    w.tracker.setFirstTier(A.id, true);
    await w.sim.run(50);
    assert.deepEqual(tiers, [true]);
    push(w, w.origin.publish()); // 5
    await w.sim.until(() => A.store.has(R, 5), 1000, 'A has 5');
    assert.equal(httpGets(w, 5).length, 1);
  });
});

describe('eviction', () => {
  test('old segments are evicted and announced lost, so neighbours stop asking for them', async (t) => {
    const w = world(t, { segments: 6 });
    const A = await addPeer(w, 'A', { capacityBytes: 3 * SEG + SEG / 2 });
    const B = await addPeer(w, 'B');
    const obs = rawPeer(w, 'O');
    await w.sim.resolve(obs.join(), 1000);
    await linked(w, A, B);
    await w.sim.until(() => !!neighbour(A, obs)?.open, 2000, 'observer link');

    for (const seq of [0, 1, 2, 3, 4]) {
      const d = demand(w, A, seq, 1000);
      await settled(w, d);
      assertVerified(w, d);
    }
    await w.sim.run(100);
    assert.deepEqual(A.store.held(R), [2, 3, 4]);
    assert.ok(A.store.bytesUsed <= A.store.capacityBytes, 'within capacity');
    const lost = obs.received(A.id, 'lost').flatMap((m) => m.ranges);
    assert.deepEqual(lost, [
      [0, 0],
      [1, 1],
    ]);
    const haves = obs.received(A.id, 'have').flatMap((m) => m.ranges.map(([a, b]) => `${a}-${b}`));
    assert.deepEqual(haves, ['0-0', '1-1', '2-2', '3-3', '4-4']);
    const view = neighbour(B, A)!;
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((s) => view.holdsSegment(R, s)),
      [false, false, true, true, true],
    );

    // B wants 0: nobody has it any more, so HTTP; A is not asked.
    const d0 = demand(w, B, 0, 5000);
    assert.equal((await settled(w, d0)).source, 'http');
    assertVerified(w, d0);
    // B wants 4: A still has it.
    const d4 = demand(w, B, 4, 5000);
    assert.equal((await settled(w, d4)).source, 'p2p');
    assertVerified(w, d4);
    assert.deepEqual(
      A.requests.map((r) => r.seq),
      [4],
    );
  });
});

// ---------------------------------------------------------------------------------------------------

type PoisonMode =
  | 'wrong bytes'
  | "another segment's bytes"
  | 'fewer bytes than announced, totalBytes short (attestation unknown)'
  | 'totalBytes mismatching the pushed attestation'
  | 'chunks with a gap'
  | 'fewer bytes than announced, then silence';

const POISON: {
  mode: PoisonMode;
  pushAttestation: boolean;
  code: 'peer-sent-bad-segment' | 'peer-protocol-violation' | undefined;
  reason?: string;
}[] = [
  {
    mode: 'wrong bytes',
    pushAttestation: true,
    code: 'peer-sent-bad-segment',
    reason: 'segment-hash-mismatch',
  },
  {
    mode: "another segment's bytes",
    pushAttestation: false,
    code: 'peer-sent-bad-segment',
    reason: 'segment-hash-mismatch',
  },
  {
    mode: 'fewer bytes than announced, totalBytes short (attestation unknown)',
    pushAttestation: false,
    code: 'peer-sent-bad-segment',
    reason: 'segment-length-mismatch',
  },
  {
    mode: 'totalBytes mismatching the pushed attestation',
    pushAttestation: true,
    code: 'peer-protocol-violation',
  },
  { mode: 'chunks with a gap', pushAttestation: false, code: 'peer-protocol-violation' },
  { mode: 'fewer bytes than announced, then silence', pushAttestation: false, code: undefined },
];

describe('a poisoning neighbour', () => {
  for (const c of POISON)
    test(`${c.mode}: never stored, played or relayed; ${c.code ?? 'switched to HTTP'}`, async (t) => {
      const w = world(t, { tracker: { introduceOnJoin: false } });
      const E = await addPeer(w, 'E');
      const P = rawPeer(w, 'P'); // the poisoner
      const T = rawPeer(w, 'T'); // a third peer, downstream of E
      await w.sim.resolve(P.join(), 1000);
      await w.sim.resolve(T.join(), 1000);
      const seq = 3;
      const real = w.origin.segment(R, seq);
      if (c.pushAttestation) push(w, [real.attestation]);

      P.on('connect', (to) => P.send(to, { type: 'have', rendition: R, reset: true, ranges: [[0, 3]] }));
      P.on('message', (from, msg) => {
        if (msg.type !== 'request') return;
        const bytes = real.bytes.slice();
        switch (c.mode) {
          case 'wrong bytes':
            for (let i = 0; i < bytes.length; i += 997) bytes[i]! ^= 0x5a;
            P.sendData(from, msg.requestId, bytes);
            break;
          case "another segment's bytes":
            P.sendData(from, msg.requestId, w.origin.segment(R, seq - 1).bytes);
            break;
          case 'fewer bytes than announced, totalBytes short (attestation unknown)':
            P.sendData(from, msg.requestId, bytes.subarray(0, 60_000));
            break;
          case 'totalBytes mismatching the pushed attestation':
            P.sendData(from, msg.requestId, bytes.subarray(0, 60_000));
            break;
          case 'chunks with a gap':
            P.sendData(from, msg.requestId, bytes.subarray(0, 16_384), { totalBytes: SEG });
            P.sendData(from, msg.requestId, bytes.subarray(32_768), { totalBytes: SEG, offset: 32_768 });
            break;
          case 'fewer bytes than announced, then silence':
            P.sendData(from, msg.requestId, bytes.subarray(0, 32_768), { totalBytes: SEG });
            break;
        }
        // Right behind the poison, the third peer asks E for the same segment.
        T.send(E.id, request(100, seq, 5000));
      });
      // T asks again after every rejection and whenever E announces the segment.
      let nextId = 1;
      E.engine.on('segment-rejected', () => T.send(E.id, request(200 + nextId++, seq, 5000)));
      T.on('message', (_from, msg) => {
        if (msg.type === 'have' && msg.ranges.some(([a, b]) => a <= seq && seq <= b))
          T.send(E.id, request(nextId++, seq, 5000));
      });

      w.tracker.introduce(E.id, P.id);
      w.tracker.introduce(E.id, T.id);
      await w.sim.until(
        () => !!neighbour(E, P)?.holdsSegment(R, seq) && !!neighbour(E, T)?.open,
        5000,
        'links',
      );

      const d = demand(w, E, seq, 4000);
      const r = await settled(w, d);
      assert.equal(P.received(E.id, 'request').length, 1, 'E asked the poisoner first');
      assert.equal(r.source, 'http', 'delivered by the origin');
      assertVerified(w, d);
      assert.equal(httpGets(w, seq).length, 1);
      await w.sim.run(500);

      // Nothing unverified stored, played (the load result above) or relayed in full: E relays what
      // it receives as it arrives, but the last bytes only once verified.
      assert.deepEqual(E.badStores, []);
      assert.equal(sha(E.store.get(R, seq)!.bytes), real.attestation.sha256);
      const toT = T.received(E.id, 'data');
      const requestIds = [...new Set(toT.map((m) => m.requestId))];
      const absent = T.received(E.id, 'absent');
      let complete = 0;
      for (const id of requestIds) {
        const got = T.dataFor(E.id, id)!;
        if (got.bytes.byteLength === got.totalBytes) {
          complete++;
          assert.equal(sha(got.bytes), real.attestation.sha256, `request ${id}: the verified segment`);
        } else
          assert.ok(
            absent.some((a) => a.requestId === id && a.reason === 'busy'),
            `request ${id}: a relay of bytes that failed the check ends busy`,
          );
      }
      assert.ok(complete >= 1, 'T got the segment once E had verified it');
      // Asked while E was receiving the poison: relayed then ended (busy), or refused (not-held).
      const first = T.dataFor(E.id, 100);
      assert.ok(
        absent.some((a) => a.requestId === 100) || (first && sha(first.bytes) === real.attestation.sha256),
        'the request made during the poison never completed with bytes that are not the segment',
      );

      if (c.code) {
        assert.deepEqual(P.byes(E.id), [c.code]);
        assert.deepEqual(
          E.closed.map((x) => x.id),
          [P.id],
        );
        assert.ok(!E.engine.neighbours.has(P.id), 'the poisoner is no neighbour');
        if (c.reason)
          assert.deepEqual(
            E.rejected.map((x) => [x.mediaSequence, x.reason, x.from]),
            [[seq, c.reason, P.id]],
          );
        // Never again: re-introduced by the tracker, and dialling E itself.
        w.tracker.introduce(E.id, P.id);
        await w.sim.run(100);
        P.dial(E.id);
        await w.sim.run(20_000);
        assert.equal(P.connected(E.id), false);
        assert.ok(!E.engine.neighbours.has(P.id), 'the poisoner is no neighbour');
        assert.equal(E.connected.filter((id) => id === P.id).length, 1);
      } else {
        assert.deepEqual(P.byes(E.id), []);
        assert.equal(P.received(E.id, 'cancel').length, 1, 'the stalled request was cancelled');
        assert.deepEqual(E.rejected, []);
        assert.ok(neighbour(E, P)?.open, 'a slow neighbour is not a poisoner');
      }
      // The other neighbour was not disturbed.
      assert.ok(neighbour(E, T)?.open, 'the link to T is still open');
    });
});

// ---------------------------------------------------------------------------------------------------

const VIOLATIONS: { what: string; hello: RawPeerOptions['hello']; then?: WireMessage; code: string }[] = [
  { what: 'garbage bytes', hello: Uint8Array.of(0xff, 0x00, 0x13, 0x37), code: 'peer-protocol-violation' },
  {
    what: 'a request before hello',
    hello: false,
    then: request(1, 3, 1000),
    code: 'peer-protocol-violation',
  },
  { what: 'a hello for another channel', hello: { channel: 'other' }, code: 'peer-wrong-channel' },
  {
    what: 'a hello of another wire version',
    hello: { version: WIRE_VERSION + 1 },
    code: 'peer-version-mismatch',
  },
  { what: 'a hello with another peer id', hello: { peerId: pid('Z') }, code: 'peer-protocol-violation' },
  {
    what: 'a second hello',
    hello: {},
    then: { type: 'hello', version: WIRE_VERSION, peerId: pid('X'), channel: 'chan' },
    code: 'peer-protocol-violation',
  },
];

describe('protocol violations', () => {
  for (const v of VIOLATIONS)
    test(`${v.what}: that link closes with ${v.code}, other neighbours carry on`, async (t) => {
      const w = world(t, { tracker: { introduceOnJoin: false } });
      const E = await addPeer(w, 'E');
      const B = await addPeer(w, 'B');
      w.tracker.introduce(B.id, E.id);
      await linked(w, E, B);
      give(w, B, 3);
      const X = rawPeer(w, 'X', { hello: v.hello });
      await w.sim.resolve(X.join(), 1000);
      if (v.then) {
        const msg = v.then;
        X.on('connect', (to) => X.send(to, msg));
      }
      w.tracker.introduce(E.id, X.id);
      await w.sim.until(() => E.closed.length > 0, 5000, 'E closes X');
      await w.sim.run(100); // the bye and the close reach X

      assert.deepEqual(
        E.closed.map((c) => c.id),
        [X.id],
      );
      assert.deepEqual(X.byes(E.id), [v.code]);
      assert.equal(X.connected(E.id), false);
      assert.ok(!E.engine.neighbours.has(X.id), 'X is no neighbour');
      // B is untouched, and still serves E.
      assert.ok(neighbour(E, B)?.open && neighbour(B, E)?.open, 'E ↔ B still open');
      assert.equal(B.closed.length, 0);
      const d = demand(w, E, 3, 5000);
      assert.equal((await settled(w, d)).source, 'p2p');
      assertVerified(w, d);
      // Banned: neither re-introduced nor dialling gets X back in.
      w.tracker.introduce(E.id, X.id);
      await w.sim.run(100);
      X.dial(E.id);
      await w.sim.run(20_000);
      assert.equal(X.connected(E.id), false);
      assert.ok(!E.engine.neighbours.has(X.id), 'X is no neighbour');
      assert.equal(E.closed.length, 1);
    });

  test('a neighbour that never says hello is dropped with peer-timeout, and may come back', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const E = await addPeer(w, 'E');
    const X = rawPeer(w, 'X', { hello: false });
    await w.sim.resolve(X.join(), 1000);
    w.tracker.introduce(E.id, X.id);
    await w.sim.until(() => E.closed.length > 0, 15_000, 'hello timeout');
    await w.sim.run(100);
    assert.deepEqual(X.byes(E.id), ['peer-timeout']);
    // Not banned: E (the dialling side) tries again.
    await w.sim.until(() => X.links.has(E.id), 10_000, 'redial');
  });
});

// ---------------------------------------------------------------------------------------------------

describe('uploads', () => {
  async function uploader(t: TestContext, opts: PeerOpts, raws = ['R']) {
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 6 });
    const E = await addPeer(w, 'E', opts);
    give(w, E, 0, 1, 2, 3, 4, 5);
    const rs: RawPeer[] = [];
    for (const name of raws) {
      const r = rawPeer(w, name);
      await w.sim.resolve(r.join(), 1000);
      w.tracker.introduce(E.id, r.id);
      rs.push(r);
    }
    await w.sim.until(() => rs.every((r) => !!neighbour(E, r)?.open), 5000, 'links');
    return { w, E, rs };
  }

  /** Bytes of each request received so far. */
  function progress(r: RawPeer, from: string): Map<number, number> {
    const m = new Map<number, number>();
    for (const d of r.received(from, 'data')) m.set(d.requestId, (m.get(d.requestId) ?? 0) + d.bytes.length);
    return m;
  }

  test('earliest deadline first, at most slotsPerNeighbour at once, the upload cap respected', async (t) => {
    const capKbps = 800; // 100 kB/s
    // The requester never gives up: let requests wait in the queue (no `busy` after a while).
    const { w, E, rs } = await uploader(t, { uploadCapKbps: capKbps, upload: { maxQueueWaitMs: 60_000 } });
    const R1 = rs[0]!;
    let maxActive = 0;
    let maxQueued = 0;
    const sample = () => {
      maxActive = Math.max(maxActive, E.engine.uploads.active);
      maxQueued = Math.max(maxQueued, E.engine.uploads.queued);
    };
    const sentAt = w.clock.now();
    R1.send(E.id, request(1, 0, 5000));
    R1.send(E.id, request(2, 1, 5000));
    R1.send(E.id, request(3, 2, 9000));
    R1.send(E.id, request(4, 3, 1000));
    R1.send(E.id, request(5, 4, 3000));
    await w.sim.until(
      () => {
        sample();
        const p = progress(R1, E.id);
        return [1, 2, 3, 4, 5].every((id) => p.get(id) === SEG);
      },
      20_000,
      'all uploads',
    );
    const data = R1.received(E.id, 'data');
    const firsts = [...new Set(data.map((d) => d.requestId))];
    // Under the cap the tokens go to the most urgent active upload: 1 (first in), then 4 (1 s), 5 (3 s),
    // 2 (5 s, active since the start but less urgent) and 3 (9 s).
    assert.deepEqual(firsts, [1, 4, 5, 2, 3], 'bytes go out earliest deadline first');
    assert.equal(maxActive, E.engine.uploads.opts.slotsPerNeighbour);
    assert.equal(maxQueued, 3);
    for (const id of [1, 2, 3, 4, 5])
      assert.equal(sha(R1.dataFor(E.id, id)!.bytes), w.origin.segment(R, id - 1).attestation.sha256);

    // Token bucket: by any time s, at most burst + cap·s bytes went out (plus one chunk of rounding).
    const rate = (capKbps * 1000) / 8;
    const burst = Math.max(E.engine.uploads.opts.chunkBytes * 4, rate / 4);
    const latency = w.net.config.latencyMs;
    const start = sentAt + latency; // the requests reached E
    const inbox = w.raws[0]!.inbox.filter((m) => m.msg.type === 'data');
    let sum = 0;
    for (const m of inbox) {
      sum += (m.msg as Extract<WireMessage, { type: 'data' }>).bytes.length;
      const s = (m.at - latency - start) / 1000;
      assert.ok(sum <= burst + rate * s + 1, `${sum} bytes after ${s} s`);
    }
    const tookS = (inbox.at(-1)!.at - latency - start) / 1000;
    const ideal = (5 * SEG - burst) / rate;
    assert.ok(tookS >= ideal - 0.01 && tookS <= ideal + 0.5, `took ${tookS} s, ideal ${ideal} s`);
    assert.equal(E.engine.uploads.uploadedBytes, 5 * SEG);
  });

  test('busy when the queue is full; not-held for what it lacks; a cancelled request is never sent', async (t) => {
    const { w, E, rs } = await uploader(t, {
      uploadCapKbps: 800,
      upload: { maxQueued: 2, maxQueueWaitMs: 60_000 },
    });
    const R1 = rs[0]!;
    for (let id = 1; id <= 6; id++) R1.send(E.id, request(id, id - 1, 5000));
    R1.send(E.id, { type: 'cancel', requestId: 4 });
    await w.sim.run(100);
    assert.deepEqual(
      R1.received(E.id, 'absent').map((a) => [a.requestId, a.reason]),
      [
        [5, 'busy'],
        [6, 'busy'],
      ],
    );
    R1.send(E.id, request(7, 9, 5000)); // not held
    await w.sim.run(5000);
    assert.deepEqual(
      R1.received(E.id, 'absent').map((a) => [a.requestId, a.reason]),
      [
        [5, 'busy'],
        [6, 'busy'],
        [7, 'not-held'],
      ],
    );
    const p = progress(R1, E.id);
    assert.deepEqual(
      [...p.entries()].sort((a, b) => a[0] - b[0]),
      [
        [1, SEG],
        [2, SEG],
        [3, SEG],
      ],
    );
    // Uploads pin what they read; everything is unpinned once done.
    assert.ok(
      [0, 1, 2, 3, 4, 5].every((s) => !E.store.isPinned(R, s)),
      'nothing left pinned',
    );
  });

  test('under the upload cap, active uploads share it (a later, more urgent request is not starved)', async (t) => {
    const { w, E, rs } = await uploader(t, { uploadCapKbps: 800 }, ['R', 'S']);
    const [R1, S1] = rs as [RawPeer, RawPeer];
    R1.send(E.id, request(1, 0, 10_000));
    await w.sim.run(1);
    S1.send(E.id, request(1, 1, 800));
    await w.sim.until(() => progress(R1, E.id).get(1) === SEG, 5000, 'R done');
    const doneAt = w.clock.now();
    const firstToS = S1.inbox.find((m) => m.msg.type === 'data');
    assert.ok(firstToS && firstToS.at < doneAt, 'S got bytes while R was being served');
  });
});

// ---------------------------------------------------------------------------------------------------

describe('HeadlessPlayer', () => {
  function player(w: World, p: Peer, opts: Partial<PlayerOptions> = {}) {
    const pl = new HeadlessPlayer(p.engine, opts);
    const log = {
      playing: [] as { startupMs: number; mediaSequence: number; at: number }[],
      stallStarted: [] as number[],
      stallEnded: [] as number[],
      liveSync: 0,
    };
    pl.on('playing', (e) => log.playing.push({ ...e, at: w.clock.now() }));
    pl.on('stall-started', () => log.stallStarted.push(w.clock.now()));
    pl.on('stall-ended', (e) => log.stallEnded.push(e.durationMs));
    pl.on('live-sync', () => log.liveSync++);
    return { pl, log };
  }

  test('HTTP only: starts near the live edge, counts startup, follows the live edge; p2p:false never opens links', async (t) => {
    const w = world(t, { segments: 6, origin: { latencyMs: 200 } });
    w.origin.startLive((atts) => push(w, atts));
    const peers = [makePeer(w, 'A', { p2p: false }), makePeer(w, 'B', { p2p: false })];
    const players = peers.map((p) => player(w, p));
    const createdAt = w.clock.now();
    for (const p of peers) void p.engine.start();
    await w.sim.until(() => players.every((x) => x.pl.state === 'playing'), 5000, 'playing');
    for (const { pl, log } of players) {
      assert.equal(log.playing[0]!.mediaSequence, 4, 'one segment behind the newest (5)');
      // channel.json, master, media playlist, segment and its attestation: five round trips of 200 ms.
      assert.equal(pl.startupMs, log.playing[0]!.at - createdAt);
      assert.ok(pl.startupMs! >= 5 * 200 + 100 && pl.startupMs! <= 5 * 200 + 400, `startup ${pl.startupMs}`);
    }
    const latencies: number[] = [];
    for (let i = 0; i < 40; i++) {
      await w.sim.run(500);
      latencies.push(players[0]!.pl.latencyS!);
    }
    const [min, max] = [Math.min(...latencies), Math.max(...latencies)];
    assert.ok(min >= 1.5 && max <= 5.5, `latency ${min}…${max} s`);
    for (const { pl, log } of players) {
      assert.equal(pl.state, 'playing');
      assert.equal(pl.stalls, 0);
      assert.deepEqual(log.stallStarted, []);
      assert.ok(pl.segmentsPlayed >= 10, `played ${pl.segmentsPlayed} segments`);
      assert.equal(pl.segmentsOnTime, pl.segmentsPlayed);
    }
    // Never joined, never linked.
    assert.equal(w.tracker.joins.length, 0);
    assert.equal(w.net.openLinks, 0);
    for (const p of peers) {
      assert.equal(p.engine.neighbours.size, 0);
      assert.deepEqual(p.connected, []);
      assert.ok(p.loaded.length >= 10 && p.loaded.every((l) => l.source === 'http'), 'everything over HTTP');
    }
    assert.equal(httpGets(w, 6).length, 2, 'each viewer fetched each segment itself');
  });

  test('startBehindSegments picks the start segment', async (t) => {
    const w = world(t, { segments: 6 });
    const p = makePeer(w, 'A', { p2p: false });
    const { log } = player(w, p, { startBehindSegments: 3 });
    void p.engine.start();
    await w.sim.until(() => log.playing.length > 0, 5000, 'playing');
    assert.equal(log.playing[0]!.mediaSequence, 2);
  });

  test('stalls when the origin is slow, resumes, and falls behind the live edge by the stall', async (t) => {
    const w = world(t, { segments: 4 });
    w.origin.startLive((atts) => push(w, atts));
    const p = makePeer(w, 'A'); // with a tracker, alone: HTTP at once, and reports
    const { pl, log } = player(w, p);
    await w.sim.resolve(p.engine.start(), 5000);
    await w.sim.run(10_000);
    assert.equal(pl.state, 'playing');
    assert.equal(pl.stalls, 0);
    const latencyBefore = pl.latencyS!;
    assert.ok(latencyBefore >= 1.5 && latencyBefore <= 5.5, `latency ${latencyBefore}`);

    const slowFrom = w.clock.now();
    const fast = w.origin.setProfile('/segments/', { bytesPerS: 15_000 }); // 100 kB take 6.7 s
    await w.sim.until(() => pl.state === 'stalled', 10_000, 'stall');
    assert.ok(log.stallStarted[0]! > slowFrom, 'the stall follows the slowdown');
    await w.sim.run(5000);
    fast();
    await w.sim.until(() => log.stallEnded.length > 0, 20_000, 'resume');
    assert.equal(pl.state, 'playing');
    assert.ok(pl.stalls >= 1, 'stalls counted');
    assert.ok(pl.stallMs > 0, 'stall time counted');
    assert.equal(
      pl.stallMs,
      log.stallEnded.reduce((a, b) => a + b, 0),
    );
    assert.ok(pl.segmentsOnTime < pl.segmentsPlayed, 'a segment came late');
    await w.sim.run(4000);
    assert.equal(pl.state, 'playing');
    if (log.liveSync === 0) {
      const latencyAfter = pl.latencyS!;
      assert.ok(
        latencyAfter >= latencyBefore + pl.stallMs / 1000 - 2.5,
        `latency ${latencyBefore} → ${latencyAfter} after ${pl.stallMs} ms stalled`,
      );
    }
    // The tracker hears about it.
    await w.sim.run(w.tracker.opts.reportIntervalMs);
    const last = w.tracker.reportsOf(p.id).at(-1)!;
    assert.equal(last.stalls, pl.stalls);
    assert.ok(last.bufferS > 0, 'buffer reported');
    assert.deepEqual(
      w.tracker.reports.filter((r) => !r.valid),
      [],
    );
  });
});

// ---------------------------------------------------------------------------------------------------

describe('integrity of what the tracker pushes', () => {
  test('a forged attestation pushed by the tracker does not get an honest neighbour banned', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B');
    w.tracker.introduce(A.id, B.id);
    await linked(w, A, B);
    give(w, A, 3);
    await w.sim.until(() => !!neighbour(B, A)?.holdsSegment(R, 3), 1000, 'have 3');
    const real = w.origin.segment(R, 3).attestation;
    // Well-formed, but not signed by the channel: a byte length that is not the segment's.
    push(w, [{ ...real, byteLength: real.byteLength + 1 }]);
    await w.sim.run(50);
    const d = demand(w, B, 3, 5000);
    await settled(w, d);
    assertVerified(w, d);
    assert.deepEqual(B.closed, [], 'A sent the right bytes: it must not be cut off');
  });
});

describe('integrity: a pushed record replacing a verified one', () => {
  test('a forged attestation pushed after the real one was verified is not trusted', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const seq = 3;
    const real = w.origin.segment(R, seq);
    const poison = real.bytes.map((b) => b ^ 0xff);
    // The origin is slow for this segment, leaving time for the forged push.
    w.origin.setProfile(`/segments/${R}/${seq}.ts`, { bytesPerS: 20_000 });
    const E = await addPeer(w, 'E');
    const serve = (raw: RawPeer) => {
      raw.on('connect', (to) =>
        raw.send(to, { type: 'have', rendition: R, reset: true, ranges: [[seq, seq]] }),
      );
      raw.on('message', (from, msg) => {
        if (msg.type === 'request') raw.sendData(from, msg.requestId, poison);
      });
    };
    const P1 = rawPeer(w, 'P');
    const P2 = rawPeer(w, 'Q');
    serve(P1);
    serve(P2);
    await w.sim.resolve(P1.join(), 1000);
    await w.sim.resolve(P2.join(), 1000);
    w.tracker.introduce(E.id, P1.id);
    await w.sim.until(() => !!neighbour(E, P1)?.holdsSegment(R, seq), 5000, 'P1 link');

    const d = demand(w, E, seq, 20_000);
    // P1's bytes are checked against the real (signed, fetched) record and rejected; HTTP starts.
    await w.sim.until(() => E.rejected.length > 0 && httpGets(w, seq).length > 0, 5000, 'rejection');
    // A record well-formed but never signed by the channel, describing the poison.
    push(w, [{ ...real.attestation, sha256: sha(poison) }]);
    w.tracker.introduce(E.id, P2.id);
    await w.sim.until(() => d.result !== undefined, 30_000, 'load');
    assertVerified(w, d);
    assert.deepEqual(E.badStores, []);
  });
});

describe('busy neighbours', () => {
  test('a neighbour that answers busy is not asked again at once', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const E = await addPeer(w, 'E');
    const P = rawPeer(w, 'P');
    await w.sim.resolve(P.join(), 1000);
    P.on('connect', (to) => P.send(to, { type: 'have', rendition: R, reset: true, ranges: [[0, 3]] }));
    P.on('message', (from, msg) => {
      if (msg.type === 'request') P.send(from, { type: 'absent', requestId: msg.requestId, reason: 'busy' });
    });
    w.tracker.introduce(E.id, P.id);
    await w.sim.until(() => !!neighbour(E, P)?.holdsSegment(R, 3), 5000, 'links');
    const d = demand(w, E, 3, 5000);
    await settled(w, d);
    assertVerified(w, d);
    const asked = P.inbox.filter((m) => m.msg.type === 'request').map((m) => m.at);
    const gaps = asked.slice(1).map((at, i) => at - asked[i]!);
    assert.ok(
      gaps.every((g) => g >= E.engine.opts.schedulerTickMs),
      `${asked.length} requests to a busy neighbour in ${asked.at(-1)! - asked[0]!} ms`,
    );
  });
});

describe('demands', () => {
  test('dropping a demand cancels its HTTP fetch without reporting the origin unavailable', async (t) => {
    const w = world(t);
    const A = await addPeer(w, 'A');
    w.origin.setProfile('/segments/', { bytesPerS: 10_000 });
    const d = demand(w, A, 3, 1000);
    await w.sim.run(200);
    assert.equal(httpGets(w, 3).length, 1);
    A.engine.drop(R, 3);
    await w.sim.run(2000);
    assert.equal(d.error?.message, 'no longer needed');
    assert.equal(httpGets(w, 3)[0]!.aborted, true);
    assert.equal(httpGets(w, 3).length, 1, 'not fetched again');
    assert.deepEqual(A.errors, []);
  });

  test('a held segment is served from the store; concurrent loads share one fetch', async (t) => {
    const w = world(t);
    const A = await addPeer(w, 'A');
    const d1 = demand(w, A, 3, 3000);
    const d2 = demand(w, A, 3, 1000);
    await settled(w, d1);
    await settled(w, d2);
    assert.equal(httpGets(w, 3).length, 1);
    assert.equal(d1.result!.bytes, d2.result!.bytes);
    const again = await w.sim.resolve(A.engine.load(R, 3, w.clock.now()));
    assert.equal(again.source, 'cache');
    assert.equal(httpGets(w, 3).length, 1);
  });
});
