/**
 * A malicious neighbour must not drain an honest peer, and is dropped: every attack here is played by
 * a hand-driven RawPeer that joined through the (fake) tracker, against a real engine on a ManualClock
 * and a MemoryNetwork. Each test measures what the attack cost the victim (bytes uploaded, memory held,
 * bytes read, P2P share) and asserts it stays within the neighbour's budget; the figures are printed as
 * test diagnostics (`npm test -- test/peer/budgets.test.ts`).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage, type PeerComplaintCode } from '../../protocol/index.ts';
import { BanList, DebtBucket, LeakyCounter, SupplierStanding } from '../../peer/core/budget.ts';
import { HeadlessPlayer } from '../../peer/core/player.ts';
import {
  addPeer,
  dataBytes,
  demand,
  give,
  heldRanges,
  linked,
  neighbour,
  pid,
  push,
  R,
  rawNeighbour,
  request,
  SEG,
  settled,
  world,
  assertVerified,
  type Peer,
  type World,
} from './harness.ts';
import type { RawPeer } from './fakes.ts';

/** The stream's top bitrate in bytes/s (the fake channel's ladder, as the tracker describes it). */
const topBytesPerS = (w: World) =>
  Math.max(...w.origin.channelInfo().renditions.map((r) => r.bandwidthBps)) / 8;

/** Complaints the tracker got from `from` about `about`. */
const complaints = (w: World, from: Peer, about: { id: string }): PeerComplaintCode[] =>
  w.tracker.complaints.filter((c) => c.from === from.id && c.peer === about.id).map((c) => c.code);

/** Runs `fn` every `everyMs` of clock time while `raw` is linked to `to`. */
function every(w: World, everyMs: number, raw: RawPeer, to: Peer, fn: () => void): void {
  const tick = () => {
    if (!raw.connected(to.id)) return;
    fn();
    w.clock.setTimeout(tick, everyMs);
  };
  tick();
}

describe('requests: upload to one neighbour is bounded', () => {
  test('a request flood (20 requests every 50 ms, busy ignored): upload stays within budget, the flooder is closed peer-over-budget and reported once', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 100 });
    // A good uplink: 4 MB/s (32 Mbit/s), about 80× this stream's rate.
    w.net.setUploadBandwidth(pid('E'), 4_000_000);
    const E = await addPeer(w, 'E');
    give(w, E, ...Array.from({ length: 100 }, (_, i) => i));
    const B = await addPeer(w, 'B');
    w.tracker.introduce(E.id, B.id);
    await linked(w, E, B);
    const A = await rawNeighbour(w, 'A', E);
    const startedAt = w.clock.now();
    let id = 1;
    every(w, 50, A, E, () => {
      for (let i = 0; i < 20; i++, id++) A.send(E.id, request(id, id % 100, 5000));
    });
    await w.sim.run(20_000);
    const uploaded = dataBytes(A, E.id);
    const rate = topBytesPerS(w);
    t.diagnostic(
      `uploaded to a request flooder in 20 s: ${uploaded} B (${(uploaded / 20 / rate).toFixed(1)}× the stream rate), ${id - 1} requests sent`,
    );
    // Budget: a burst of a few segments, then 3× the top bitrate (and the link was closed long before).
    const budget = 4 * rate * 2 + 3 * rate * 20 + SEG;
    assert.ok(uploaded <= budget, `uploaded ${uploaded} B, budget ${budget} B`);
    assert.deepEqual(
      E.closed.map((c) => [c.id, c.code]),
      [[A.id, 'peer-over-budget']],
    );
    assert.equal(A.connected(E.id), false);
    const closedAt = A.closes[0]!.at;
    t.diagnostic(`flooder closed after ${closedAt - startedAt} ms`);
    assert.ok(closedAt - startedAt < 5000, `closed after ${closedAt - startedAt} ms`);
    await w.sim.run(100);
    assert.deepEqual(complaints(w, E, A), ['peer-over-budget']);
    // The honest neighbour is served as before.
    give(w, E, 99);
    const d = demand(w, B, 99, 3000);
    assert.equal((await settled(w, d)).source, 'p2p');
    assertVerified(w, d);
    // Never dialled or accepted again.
    A.dial(E.id);
    await w.sim.run(15_000);
    assert.equal(A.connected(E.id), false);
    assert.equal(E.connected.filter((x) => x === A.id).length, 1);
  });

  test('a polite leecher (2 requests at a time, distinct segments) gets at most 3× the stream rate after a short burst', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 100 });
    w.net.setUploadBandwidth(pid('E'), 4_000_000);
    // The per-neighbour budget alone (no fair-share limit over all neighbours: see qoe.test.ts).
    const E = await addPeer(w, 'E', { upload: { fairShareCopies: 0 } });
    give(w, E, ...Array.from({ length: 100 }, (_, i) => i));
    const A = await rawNeighbour(w, 'A', E);
    // Like an honest engine: at most 2 requests at a time, and after `busy`, that segment again 1 s later.
    const todo = Array.from({ length: 100 }, (_, i) => i);
    let id = 1;
    const outstanding = new Map<number, { seq: number; got: number }>();
    const ask = () => {
      while (outstanding.size < 2 && todo.length > 0) {
        const seq = todo.shift()!;
        outstanding.set(id, { seq, got: 0 });
        A.send(E.id, request(id++, seq, 10_000));
      }
    };
    let busy = 0;
    A.on('message', (_from, msg) => {
      if (msg.type === 'data') {
        const o = outstanding.get(msg.requestId)!;
        o.got += msg.bytes.byteLength;
        if (o.got >= msg.totalBytes) outstanding.delete(msg.requestId);
        ask();
      } else if (msg.type === 'absent') {
        busy++;
        const o = outstanding.get(msg.requestId)!;
        todo.unshift(o.seq);
        w.clock.setTimeout(() => {
          outstanding.delete(msg.requestId);
          ask();
        }, 1000);
      }
    });
    const startedAt = w.clock.now();
    ask();
    const samples: { s: number; bytes: number }[] = [];
    for (let s = 1; s <= 20; s++) {
      await w.sim.run(1000);
      samples.push({ s, bytes: dataBytes(A, E.id) });
    }
    const rate = topBytesPerS(w);
    const uploaded = samples.at(-1)!.bytes;
    t.diagnostic(
      `uploaded to a polite leecher in 20 s: ${uploaded} B (${(uploaded / 20 / rate).toFixed(1)}× the stream rate), ${busy} busy answers`,
    );
    // At every second s: at most a burst of 4 segments plus 3× the stream rate, plus one segment in flight.
    for (const { s, bytes } of samples)
      assert.ok(bytes <= 4 * rate * 2 + 3 * rate * s + SEG, `${bytes} B after ${s} s`);
    // Not starved either: it got about its budget.
    assert.ok(uploaded >= 2 * rate * 20, `only ${uploaded} B`);
    assert.ok(w.clock.now() - startedAt >= 20_000);
    // Within budget, it stays a neighbour.
    assert.ok(neighbour(E, A)?.open, 'still linked');
  });

  test('requests for renditions not in the ladder never cost an upload and close the link', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 6 });
    const E = await addPeer(w, 'E');
    give(w, E, 0, 1, 2, 3, 4, 5);
    const A = await rawNeighbour(w, 'A', E);
    A.send(E.id, request(1, 3, 5000, 'nosuch'));
    await w.sim.run(200);
    assert.equal(dataBytes(A, E.id), 0);
    assert.deepEqual(A.byes(E.id), ['peer-protocol-violation']);
    assert.deepEqual(complaints(w, E, A), ['peer-protocol-violation']);
  });

  test('asking again and again for a segment already sent in full closes the link after a couple', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 6 });
    const E = await addPeer(w, 'E');
    give(w, E, 0, 1, 2, 3, 4, 5);
    const A = await rawNeighbour(w, 'A', E);
    let id = 1;
    A.on('message', (_from, msg) => {
      // One request at a time, the same segment again as soon as the last one arrived.
      if (msg.type === 'data' && msg.offset + msg.bytes.byteLength === msg.totalBytes)
        A.send(E.id, request(++id, 3, 5000));
    });
    A.send(E.id, request(id, 3, 5000));
    await w.sim.run(10_000);
    const full = dataBytes(A, E.id) / SEG;
    t.diagnostic(`the same segment sent ${full} times before the link closed`);
    assert.ok(full >= 2 && full <= 4, `sent ${full} times`);
    assert.deepEqual(
      E.closed.map((c) => [c.id, c.code]),
      [[A.id, 'peer-over-budget']],
    );
  });
});

describe('have: what a neighbour announces is bounded in memory', () => {
  test('a have flood with distinct rendition names: nothing of it is held, and the link closes', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const E = await addPeer(w, 'E');
    const A = await rawNeighbour(w, 'A', E);
    const ranges: [number, number][] = Array.from({ length: 1024 }, (_, i) => [2 * i, 2 * i]);
    let k = 0;
    let peak = { renditions: 0, ranges: 0 };
    every(w, 10, A, E, () => {
      for (let i = 0; i < 2; i++)
        A.send(E.id, encodeMessage({ type: 'have', rendition: `r${k++}`, reset: false, ranges }));
      const h = heldRanges(neighbour(E, A));
      if (h.ranges > peak.ranges) peak = h;
    });
    await w.sim.run(15_000);
    t.diagnostic(
      `have flood: ${k} names sent, peak held ${peak.renditions} renditions, ${peak.ranges} ranges`,
    );
    assert.ok(peak.renditions <= 1 && peak.ranges <= 1024, JSON.stringify(peak));
    assert.equal(A.connected(E.id), false, 'closed');
    assert.deepEqual(A.byes(E.id), ['peer-protocol-violation']);
    assert.deepEqual(complaints(w, E, A), ['peer-protocol-violation']);
  });

  test('a have flood fragmenting a known rendition: held ranges stay bounded, the link closes peer-over-budget', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const E = await addPeer(w, 'E');
    const A = await rawNeighbour(w, 'A', E);
    let base = 0;
    let peak = 0;
    every(w, 10, A, E, () => {
      const ranges: [number, number][] = Array.from({ length: 1024 }, (_, i) => [base + 2 * i, base + 2 * i]);
      base += 2048;
      A.send(E.id, encodeMessage({ type: 'have', rendition: R, reset: false, ranges }));
      peak = Math.max(peak, heldRanges(neighbour(E, A)).ranges);
    });
    await w.sim.run(5000);
    t.diagnostic(`fragmenting have flood: peak ${peak} ranges held`);
    assert.ok(peak <= 2048, `peak ${peak}`);
    assert.deepEqual(A.byes(E.id), ['peer-over-budget']);
  });
});

describe('data: only what was asked for', () => {
  test('data for a request never issued closes the link at once', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false } });
    const E = await addPeer(w, 'E');
    const A = await rawNeighbour(w, 'A', E);
    const n = neighbour(E, A)!;
    const chunk = new Uint8Array(60_000);
    let sent = 0;
    every(w, 5, A, E, () => {
      for (let i = 0; i < 4; i++, sent++)
        A.send(E.id, {
          type: 'data',
          requestId: 999,
          offset: (sent % 100) * 60_000,
          totalBytes: 6_000_000,
          bytes: chunk,
        });
    });
    await w.sim.run(5000);
    t.diagnostic(
      `unrequested data: ${n.unrequestedBytes} B read before the link closed (${sent * 60_000} B sent; open: ${A.connected(E.id)})`,
    );
    assert.ok(n.unrequestedBytes <= 60_000, `read ${n.unrequestedBytes} B`);
    assert.equal(A.connected(E.id), false);
    assert.deepEqual(A.byes(E.id), ['peer-protocol-violation']);
    assert.ok(A.closes[0]!.at - A.inbox[0]!.at < 200, 'closed at once');
    assert.deepEqual(complaints(w, E, A), ['peer-protocol-violation']);
  });

  test('late data of a cancelled request: what the sender had queued is fine, more closes peer-over-budget', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 6 });
    const E = await addPeer(w, 'E');
    const A = await rawNeighbour(w, 'A', E);
    A.send(E.id, { type: 'have', rendition: R, reset: true, ranges: [[0, 5]] });
    await w.sim.until(() => !!neighbour(E, A)?.holdsSegment(R, 3), 1000, 'have');
    const n = neighbour(E, A)!;
    const big = 8_000_000;
    let requestId = -1;
    A.on('message', (_from, msg) => {
      if (msg.type === 'request') requestId = msg.requestId;
    });
    const d = demand(w, E, 3, 8000);
    await w.sim.until(() => requestId >= 0, 1000, 'request');
    // A starts answering with a (lying) 8 MB total; E drops the demand (cancel), A keeps sending.
    let offset = 0;
    const sendChunk = () =>
      offset + 60_000 <= big &&
      A.send(E.id, {
        type: 'data',
        requestId,
        offset,
        totalBytes: big,
        bytes: new Uint8Array(60_000),
      }) &&
      (offset += 60_000);
    sendChunk();
    await w.sim.run(50);
    E.engine.drop(R, 3);
    await w.sim.run(50);
    every(w, 5, A, E, () => {
      for (let i = 0; i < 4; i++) sendChunk();
    });
    await w.sim.run(5000);
    t.diagnostic(
      `late data: ${n.unrequestedBytes} B read after the cancel before the link closed (${offset} B sent; open: ${A.connected(E.id)})`,
    );
    assert.ok(n.unrequestedBytes <= n.budget.lateBytesPerCancel + 60_000, `read ${n.unrequestedBytes} B`);
    assert.ok(d.error, 'the demand was dropped');
    assert.equal(A.connected(E.id), false);
    assert.deepEqual(A.byes(E.id), ['peer-over-budget']);
    assert.ok(offset < 4_000_000, `${offset} B went through`);
  });
});

describe('withholding and dripping neighbours are demoted, then dropped', () => {
  /**
   * A live channel: H (honest, first tier) fetches every segment from the origin, V plays with the
   * headless player, and A announces every segment but withholds it (`mode`). H's uplink is 300 kB/s
   * (6× the stream rate), so A's untried prior (1.5 MB/s) looks better to V: V asks A first.
   */
  async function live(t: Parameters<typeof world>[0], mode: 'silent' | 'not-held' | 'drip') {
    const w = world(t, { tracker: { introduceOnJoin: false, firstTier: [pid('H')] }, segments: 4 });
    w.origin.startLive((atts) => push(w, atts));
    w.net.setUploadBandwidth(pid('H'), 300_000);
    const H = await addPeer(w, 'H');
    const V = await addPeer(w, 'V');
    w.tracker.introduce(H.id, V.id);
    await linked(w, H, V);
    const A = await rawNeighbour(w, 'A', V);
    const announce = () =>
      A.send(V.id, { type: 'have', rendition: R, reset: true, ranges: [[0, 1_000_000]] });
    announce();
    let requests = 0;
    A.on('message', (from, msg) => {
      if (msg.type !== 'request') return;
      requests++;
      if (mode === 'not-held') {
        A.send(from, { type: 'absent', requestId: msg.requestId, reason: 'not-held' });
        announce(); // and claims it again
      } else if (mode === 'drip') {
        const drip = (offset: number) => {
          if (!A.connected(from) || offset >= SEG) return;
          A.send(from, {
            type: 'data',
            requestId: msg.requestId,
            offset,
            totalBytes: SEG,
            bytes: w.origin.segment(R, msg.mediaSequence).bytes.subarray(offset, offset + 1000),
          });
          w.clock.setTimeout(() => drip(offset + 1000), 700);
        };
        drip(0);
      }
    });
    const player = new HeadlessPlayer(V.engine);
    t.after(() => player.destroy());
    await w.sim.run(60_000);
    return { w, V, A, player, requests: () => requests };
  }

  /** Share of the bytes `p` loaded from `fromMs` on that came from peers. */
  function p2pShare(p: Peer, fromMs = 0): number {
    let p2p = 0;
    let all = 0;
    for (const l of p.loaded) {
      if (l.at < fromMs) continue;
      all += l.bytes;
      if (l.source === 'p2p') p2p += l.bytes;
    }
    return all > 0 ? p2p / all : 0;
  }

  for (const mode of ['silent', 'not-held', 'drip'] as const)
    test(`${mode}: dropped peer-unresponsive after a few attempts and reported; the P2P share from the honest neighbour recovers`, async (t) => {
      const { w, V, A, player, requests } = await live(t, mode);
      const share = p2pShare(V);
      const tail = p2pShare(V, 30_000);
      t.diagnostic(
        `${mode} neighbour: V's P2P share over 60 s ${share.toFixed(2)} (last 30 s ${tail.toFixed(2)}), ` +
          `${requests()} requests to the attacker, ${player.stalls} stalls`,
      );
      assert.deepEqual(A.byes(V.id), ['peer-unresponsive']);
      assert.ok(requests() <= 6, `${requests()} requests to the attacker`);
      assert.deepEqual(complaints(w, V, A), ['peer-unresponsive']);
      assert.ok(tail >= 0.9, `P2P share over the last 30 s: ${tail}`);
      assert.equal(player.stalls, 0);
    });

  test('an honest neighbour that stalls once is demoted for a moment, not dropped', async (t) => {
    const w = world(t, { tracker: { introduceOnJoin: false }, segments: 8 });
    const A = await addPeer(w, 'A');
    const B = await addPeer(w, 'B');
    w.tracker.introduce(A.id, B.id);
    await linked(w, A, B);
    give(w, A, 2, 3, 4, 5, 6, 7);
    push(
      w,
      [2, 3, 4, 5, 6, 7].map((s) => w.origin.segment(R, s).attestation),
    );
    await w.sim.until(() => !!neighbour(B, A)?.holdsSegment(R, 7), 1000, 'have');
    w.net.partition(A.id, B.id);
    const d2 = demand(w, B, 2, 5000);
    assert.equal((await settled(w, d2)).source, 'http', 'stalled, then HTTP');
    w.net.heal(A.id, B.id);
    await w.sim.run(5000);
    for (const seq of [3, 4, 5]) {
      const d = demand(w, B, seq, 5000);
      assert.equal((await settled(w, d)).source, 'p2p', `segment ${seq} from the neighbour again`);
      assertVerified(w, d);
    }
    assert.ok(neighbour(B, A)?.open, 'still linked');
    assert.deepEqual(B.closed, []);
    assert.deepEqual(w.tracker.complaints, []);
  });
});

describe('budget primitives', () => {
  test('the ban list is bounded: the oldest ban is forgotten first; bans expire', () => {
    const bans = new BanList(3);
    for (const id of ['a', 'b', 'c', 'd']) bans.ban(id, 1000);
    assert.equal(bans.size, 3);
    assert.equal(bans.has('a', 0), false, 'forgotten');
    assert.equal(bans.has('d', 0), true);
    assert.equal(bans.has('d', 1000), false, 'expired');
    assert.equal(bans.size, 2);
    for (let i = 0; i < 100_000; i++) bans.ban(`fresh${i}`, Infinity);
    assert.equal(bans.size, 3, 'a stream of fresh identities does not grow it');
  });

  test('a debt bucket charges whole segments, refills at its rate up to its capacity', () => {
    const b = new DebtBucket(
      0,
      () => 1000,
      () => 4000,
    );
    assert.equal(b.level(0), 4000);
    b.charge(0, 6000);
    assert.equal(b.level(0), -2000);
    assert.equal(b.msUntil(0, 0), 2001);
    assert.equal(b.level(2000), 0);
    assert.equal(b.level(100_000), 4000, 'capped');
    assert.equal(b.take(100_000, 5000), false);
    assert.equal(b.take(100_000, 4000), true);
  });

  test('a leaky counter leaks; standing demotes with a doubling cooling time and drops after maxFailures', () => {
    const c = new LeakyCounter(2);
    assert.equal(c.add(0, 10), 10);
    assert.equal(c.value(2000), 6);
    assert.equal(c.value(10_000), 0);
    const s = new SupplierStanding({ maxFailures: 3, demoteMs: 1000, demoteMaxMs: 1500 });
    assert.equal(s.fail(0), false);
    assert.equal(s.demoted(999), true);
    assert.equal(s.demoted(1000), false);
    assert.equal(s.fail(1000), false);
    assert.equal(s.demotedUntil, 2500, 'doubled, capped');
    s.succeed();
    assert.equal(s.failures, 0);
    assert.equal(s.demoted(1001), false);
    assert.equal(s.fail(3000), false);
    assert.equal(s.fail(3000), false);
    assert.equal(s.fail(3000), true, 'the third in a row');
  });
});
