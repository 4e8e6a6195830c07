/**
 * The simulator's in-process tracker (sim/tracker.ts): the real session core on virtual time, driven
 * by real engines over a MemoryNetwork, with a fake origin serving a tiny signed channel. Peers join
 * and get ids and neighbours, connect through signals the tracker relays, time out when silent, leave;
 * the processing delay is applied; requests are held to the gateway's rules; and the same seed gives
 * the same ids and neighbour lists.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PEER_ID_PATTERN,
  TRACKER_PROTOCOL_VERSION,
  type JoinRequest,
  type NeighboursUpdate,
} from '../../protocol/index.ts';
import { MemoryNetwork, MemorySegmentStore, PeerEngine, type Transport } from '../../peer/index.ts';
import { VirtualTime } from '../../sim/loop.ts';
import { Rng } from '../../sim/rng.ts';
import { SimTracker, type SimTrackerConnection, type SimTrackerOptions } from '../../sim/tracker.ts';
import { FakeOrigin } from '../peer/fakes.ts';

/** A transport whose network identity is the id the tracker assigned (known only once joined). */
const lateTransport = (net: MemoryNetwork): Transport => ({
  createLink: (opts) => net.transport(opts.localId).createLink(opts),
});

const joinReq = (over: Partial<JoinRequest> = {}): JoinRequest => ({
  protocolVersion: TRACKER_PROTOCOL_VERSION,
  channel: 'chan',
  kind: 'node',
  mode: 'viewer',
  uploadKbps: 2000,
  natType: 'open',
  ...over,
});

interface SimPeer {
  engine: PeerEngine;
  conn: SimTrackerConnection;
  pushes: { at: number; update: NeighboursUpdate }[];
}

const origins: FakeOrigin[] = [];
after(() => {
  for (const o of origins) o.close();
});

async function world(seed: number, opts: Partial<SimTrackerOptions> = {}) {
  const time = new VirtualTime();
  const clock = time.clock;
  const rng = new Rng(seed);
  const origin = new FakeOrigin(clock, { segmentBytes: 10_000 });
  origins.push(origin);
  origin.publishMany(3);
  const tracker = new SimTracker({ processingDelayMs: 2, latencyMs: 5, ...opts }, { clock, rng });
  await tracker.registerChannel(origin.channelInfo());
  const net = new MemoryNetwork(clock);
  const peers: SimPeer[] = [];
  const engineRng = rng.fork('engines');
  const addPeer = (): SimPeer => {
    const conn = tracker.connect();
    const engine = new PeerEngine(
      { channel: origin.opts.channel, originUrl: origin.opts.originUrl },
      {
        clock,
        transport: lateTransport(net),
        http: origin,
        tracker: conn,
        store: new MemorySegmentStore(),
        random: () => engineRng.next(),
      },
    );
    const p: SimPeer = { engine, conn, pushes: [] };
    conn.on('neighbours', (update) => p.pushes.push({ at: clock.now(), update }));
    engine.on('error', () => {});
    void engine.start().catch(() => {});
    peers.push(p);
    return p;
  };
  const run = (ms: number) => time.runUntil(time.nowMs + ms);
  const until = async (cond: () => boolean, maxMs: number, what: string) => {
    const limit = time.nowMs + maxMs;
    while (!cond()) {
      if (time.nowMs >= limit) throw new Error(`timed out waiting for ${what}`);
      await run(10);
    }
  };
  const destroy = () => {
    for (const p of peers) {
      p.engine.destroy();
      p.conn.destroy();
    }
    tracker.destroy();
  };
  return { time, clock, tracker, net, origin, peers, addPeer, run, until, destroy };
}

const linked = (a: SimPeer, b: SimPeer) =>
  !!b.engine.peerId && !!a.engine.neighbours.get(b.engine.peerId)?.open;

describe('sim/tracker: the real session core in virtual time', () => {
  test('engines join, get ids and neighbours, and connect through relayed signals', async () => {
    const w = await world(1);
    try {
      const [a, b, c] = [w.addPeer(), w.addPeer(), w.addPeer()];
      await w.until(() => [a, b, c].every((p) => p.conn.peerId !== undefined), 1000, 'joins');
      const ids = [a, b, c].map((p) => p.conn.peerId!);
      for (const id of ids) assert.match(id, PEER_ID_PATTERN);
      assert.equal(new Set(ids).size, 3);
      assert.deepEqual(
        [a, b, c].map((p) => p.engine.peerId),
        ids,
        'the engines hold the ids the tracker gave',
      );
      await w.until(
        () => linked(a, b) && linked(b, a) && linked(a, c) && linked(c, a) && linked(b, c) && linked(c, b),
        5000,
        'links',
      );
      for (const id of ids) assert.equal((await w.tracker.store.linksOf(id)).length, 2);
      const work = w.tracker.work();
      assert.equal(work.joins, 3);
      assert.ok(work.signals > 0, 'signals went through the tracker');
      assert.equal(work.signalPushes, work.signals, 'each relayed signal was pushed once');
      assert.equal(work.signalsRefused, 0);
      assert.ok(work.neighbourPushes >= 2, 'coalesced: a hears of b and c at once, b of c');
      // The first peer learned of the two others through coalesced pushes.
      assert.deepEqual(a.pushes.flatMap((p) => p.update.add).sort(), [ids[1], ids[2]].sort());
    } finally {
      w.destroy();
    }
  });

  test('a silent peer times out after peerTimeoutMs of virtual time, then reconnects; reporting peers stay', async () => {
    const w = await world(2);
    try {
      const engine = w.addPeer();
      const silent = w.tracker.connect();
      const events: [string, number][] = [];
      silent.on('disconnected', (reason) => events.push([`disconnected ${reason}`, w.clock.now()]));
      silent.on('reconnected', () => events.push(['reconnected', w.clock.now()]));
      const left: [string, string, number][] = [];
      w.tracker.sessions.on('peer-left', (i) => left.push([i.id, i.reason, w.clock.now()]));
      const ack = silent.join(joinReq());
      let joinedAt = -1;
      void ack.then(() => (joinedAt = w.clock.now()));
      await w.run(100);
      const r = await ack;
      assert.ok(r.ok);
      const id = r.peerId;
      assert.equal(joinedAt, 5 + 2 + 5, 'latency, processing, latency');
      const { peerTimeoutMs } = w.tracker.opts;
      await w.run(peerTimeoutMs - 200);
      assert.equal(left.length, 0, 'still there just before the timeout');
      assert.ok(await w.tracker.store.getPeer(id));
      await w.run(w.tracker.opts.sweepIntervalMs + 200);
      assert.equal(left.length, 1);
      const [who, reason, at] = left[0]!;
      assert.deepEqual([who, reason], [id, 'timeout']);
      assert.ok(at > peerTimeoutMs && at <= 7 + peerTimeoutMs + w.tracker.opts.sweepIntervalMs, `at ${at}`);
      assert.equal(await w.tracker.store.getPeer(id), undefined);
      assert.equal(silent.connected, false);
      assert.deepEqual(events, [['disconnected io server disconnect', at + 2 + 5]]);
      await w.run(w.tracker.opts.reconnectAfterKickMs);
      assert.deepEqual(events[1], ['reconnected', at + 7 + w.tracker.opts.reconnectAfterKickMs]);
      assert.equal(silent.connected, true);
      assert.ok(engine.conn.peerId, 'the engine reports, so it stays');
      assert.ok(await w.tracker.store.getPeer(engine.conn.peerId));
      assert.equal(w.tracker.work().timeouts, 1);
      assert.ok(w.tracker.work().reports >= 3);
      assert.ok(w.tracker.work().sweeps >= 20);
      assert.ok(w.tracker.rounds().length >= 4, 'overlay rounds every 5 s');
      silent.destroy();
    } finally {
      w.destroy();
    }
  });

  test('leave removes the peer and its neighbours are told', async () => {
    const w = await world(3);
    try {
      const [a, b] = [w.addPeer(), w.addPeer()];
      await w.until(() => linked(a, b) && linked(b, a), 5000, 'link');
      const id = b.conn.peerId!;
      b.engine.destroy(); // leaves the tracker
      b.conn.destroy();
      await w.run(100);
      assert.equal(await w.tracker.store.getPeer(id), undefined);
      assert.deepEqual(await w.tracker.store.linksOf(a.conn.peerId!), []);
      assert.ok(
        a.pushes.some((p) => p.update.remove.includes(id)),
        'a is told',
      );
      assert.equal(w.tracker.work().leaves, 1);
    } finally {
      w.destroy();
    }
  });

  test('the processing delay applies to every request and push', async () => {
    const w = await world(4, { processingDelayMs: 40, latencyMs: 0, pushCoalesceMs: 20 });
    try {
      const x = w.tracker.connect({ latencyMs: 10 });
      const y = w.tracker.connect({ latencyMs: 3 });
      const xs: number[] = [];
      x.on('neighbours', () => xs.push(w.clock.now()));
      let ackAt = -1;
      const jx = x.join(joinReq());
      void jx.then(() => (ackAt = w.clock.now()));
      await w.run(200);
      assert.equal(ackAt, 10 + 40 + 10);
      const t0 = w.clock.now();
      const jy = y.join(joinReq());
      await w.run(500);
      const ry = await jy;
      assert.ok(ry.ok);
      // x's own first-tier flag (handled at 50), then y's introduction (handled at t0 + 3 + 40): each
      // push waits for the coalescing window (20), the processing delay (40) and x's latency (10).
      assert.deepEqual(xs, [50 + 20 + 40 + 10, t0 + 3 + 40 + 20 + 40 + 10]);
      // A signal from y reaches x after y's latency, two processing delays and x's latency.
      const got: number[] = [];
      x.on('signal', () => got.push(w.clock.now()));
      const t1 = w.clock.now();
      assert.ok((await jx).ok);
      const sig = y.signal(x.peerId!, { type: 'offer', sdp: 'v=0' });
      await w.run(500);
      assert.deepEqual(await sig, { ok: true });
      assert.deepEqual(got, [t1 + 3 + 40 + 40 + 10]);
      x.destroy();
      y.destroy();
    } finally {
      w.destroy();
    }
  });

  test('requests are held to the gateway’s rules', async () => {
    const w = await world(5);
    try {
      const c = w.tracker.connect();
      const other = w.tracker.connect();
      const outcomes: unknown[] = [];
      const ask = <T>(p: Promise<T>) => void p.then((v) => outcomes.push(v));
      ask(c.join({ ...joinReq(), protocolVersion: 999 as never }));
      ask(c.join(joinReq({ uploadKbps: -1 })));
      ask(c.join(joinReq({ channel: 'nope' })));
      ask(c.signal('A'.repeat(16), { type: 'offer', sdp: 'v=0' }));
      await w.run(100);
      ask(c.join(joinReq()));
      ask(other.join(joinReq()));
      await w.run(100);
      ask(c.join(joinReq()));
      ask(c.signal('bad id', { type: 'offer', sdp: 'v=0' }));
      ask(c.signal('B'.repeat(16), { type: 'offer', sdp: 'v=0' }));
      c.report({ nonsense: true } as never);
      await w.run(100);
      const codes = outcomes.map((o) => {
        const a = o as { ok: boolean; error?: { code: string } };
        return a.ok ? 'ok' : a.error!.code;
      });
      assert.deepEqual(codes, [
        'version-mismatch',
        'invalid-input',
        'unknown-channel',
        'not-joined',
        'ok',
        'ok',
        'already-joined',
        'invalid-input',
        'unknown-peer',
      ]);
      assert.equal(c.stats.reportsRefused, 1);
      assert.match(c.stats.lastReportError ?? '', /^invalid-input: /);
      assert.equal(w.tracker.work().internalErrors, 0);
      c.destroy();
      await assert.rejects(c.join(joinReq()), /closed/);
      other.destroy();
    } finally {
      w.destroy();
    }
  });

  test('two runs with the same seed give the same ids and neighbour lists', async () => {
    const observe = async (seed: number) => {
      const w = await world(seed);
      try {
        for (let i = 0; i < 5; i++) {
          w.addPeer();
          await w.run(150);
        }
        await w.run(11_000);
        const ids = w.peers.map((p) => p.conn.peerId);
        const links = await Promise.all(ids.map(async (id) => w.tracker.store.linksOf(id!)));
        const pushes = w.peers.map((p) => p.pushes);
        const { joins, neighbourPushes, rebalances } = w.tracker.work();
        return { ids, links, pushes, joins, neighbourPushes, rebalances };
      } finally {
        w.destroy();
      }
    };
    const first = await observe(9);
    assert.deepEqual(await observe(9), first);
    assert.equal(first.joins, 5);
    assert.equal(first.rebalances, 2);
    assert.notDeepEqual((await observe(10)).ids, first.ids);
  });
});
