/**
 * The in-memory network's model beyond the `Transport` contract (transport-contract.test.ts) and the
 * basics (transport.test.ts): latency model, jitter, download capacity, handshake time, NAT and TURN,
 * loss as delay, byte counters, and its cost in timers.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NAT_TYPES, type NatType, type SignalData } from '../../protocol/index.ts';
import { ManualClock } from '../../peer/core/clock.ts';
import { ICE_FAILURE } from '../../peer/core/memory-link.ts';
import { connectsDirectly, MemoryNetwork } from '../../peer/core/memory-transport.ts';
import type { PeerLink } from '../../peer/core/seams.ts';
import { memNet, pair, type Recorder } from '../helpers/memory-links.ts';
import { Rng } from '../../sim/index.ts';

/** Seeded uniform [0, 1): the simulator's generator, so a run is the same every time. */
const seeded = (seed: number): (() => number) => {
  const rng = new Rng(seed);
  return () => rng.next();
};

/** A `random` that returns the given values in turn, then 0.99. */
function scripted(...values: number[]): () => number {
  let i = 0;
  return () => values[i++] ?? 0.99;
}

const filled = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);
const arrivals = (r: Recorder, t0: number): number[] => r.data.map((d) => d.atMs - t0);

describe('MemoryNetwork: latency model and jitter', () => {
  test('the model gives each pair its latency, called once per link; setLatency overrides it', () => {
    const calls: string[] = [];
    const coords: Record<string, number> = { a: 0, b: 30, c: 100 };
    const { clock, net } = memNet({
      latencyModel: (x, y) => {
        calls.push(`${x}-${y}`);
        return Math.abs(coords[x]! - coords[y]!);
      },
    });
    const ab = pair(net, 'a', 'b');
    const ac = pair(net, 'a', 'c');
    clock.runUntilIdle();
    assert.deepEqual(calls, ['a-b', 'a-c'], 'once per link, when its ends pair');
    assert.deepEqual(ab.rb.connects, [30]);
    assert.deepEqual(ab.ra.connects, [60]);
    assert.deepEqual(ac.ra.connects, [200]);
    const t0 = clock.now();
    for (let i = 0; i < 5; i++) {
      ab.la.send(filled(10, i));
      ab.lb.send(filled(10, i));
      ac.la.send(filled(10, i));
    }
    clock.runUntilIdle();
    assert.deepEqual(arrivals(ab.rb, t0), [30, 30, 30, 30, 30]);
    assert.deepEqual(arrivals(ab.ra, t0), [30, 30, 30, 30, 30], 'both directions');
    assert.deepEqual(arrivals(ac.rb, t0), [100, 100, 100, 100, 100]);
    assert.equal(calls.length, 2, 'never per message');
    assert.equal(net.latencyMs('a', 'c'), 100);
    net.setLatency('c', 'a', 7);
    const t1 = clock.now();
    ac.la.send(filled(1, 9));
    clock.runUntilIdle();
    assert.equal(ac.rb.data.at(-1)!.atMs - t1, 7, 'an override wins over the model, on existing links');
  });

  test('a model returning a bad latency is misuse: the answer that pairs the link throws', () => {
    const { clock, net } = memNet({ latencyModel: () => -5 });
    const la = net
      .transport('a')
      .createLink({ localId: 'a', remoteId: 'b', initiator: true, iceServers: [] });
    const lb = net
      .transport('b')
      .createLink({ localId: 'b', remoteId: 'a', initiator: false, iceServers: [] });
    const offers: SignalData[] = [];
    const answers: SignalData[] = [];
    la.on('signal', (s) => offers.push(s));
    lb.on('signal', (s) => answers.push(s));
    clock.advance(0);
    lb.signal(offers[0]!);
    clock.advance(0);
    assert.throws(() => la.signal(answers[0]!), /latencyModel\(a, b\)/);
  });

  test('jitter delays messages by [0, jitterMs) and never reorders a link; same seed, same times', () => {
    const run = (seed: number) => {
      const { clock, net } = memNet({ latencyMs: 20, jitterMs: 50, random: seeded(seed) });
      const { la, rb } = pair(net, 'a', 'b');
      clock.runUntilIdle();
      const t0 = clock.now();
      const sentAt: number[] = [];
      for (let i = 0; i < 500; i++) {
        sentAt.push(clock.now() - t0);
        la.send(filled(4, i & 0xff));
        // First spaced out (no message can hold back the next), then in bursts of 5 every 10 ms.
        if (i < 250) clock.advance(60);
        else if (i % 5 === 4) clock.advance(10);
      }
      clock.runUntilIdle();
      return { times: arrivals(rb, t0), values: rb.data.map((d) => d.bytes[0]), sentAt };
    };
    const { times, values, sentAt } = run(1);
    assert.equal(times.length, 500);
    assert.deepEqual(
      values,
      Array.from({ length: 500 }, (_, i) => i & 0xff),
      'in order',
    );
    for (let i = 0; i < 500; i++) {
      assert.ok(times[i]! >= sentAt[i]! + 20, `message ${i} before its latency`);
      if (i > 0) assert.ok(times[i]! >= times[i - 1]!, 'never overtakes');
    }
    // Spaced out, each message arrives within [20, 70) of its send, spread over the range.
    const delays = times.slice(0, 250).map((t, i) => t - sentAt[i]!);
    assert.ok(delays.every((d) => d >= 20 && d < 70));
    assert.ok(Math.min(...delays) < 25 && Math.max(...delays) > 65, `delays ${Math.min(...delays)}…`);
    assert.deepEqual(run(1).times, times, 'deterministic');
    assert.notDeepEqual(run(2).times, times, 'the seed matters');
  });

  test('jitter and loss without a seeded random are a contradiction', () => {
    const clock = new ManualClock();
    assert.throws(() => new MemoryNetwork(clock, { jitterMs: 5 }), /random/);
    assert.throws(() => new MemoryNetwork(clock, { lossRate: 0.1 }), /random/);
    assert.throws(() => new MemoryNetwork(clock, { lossRate: 1, random: Math.random }), RangeError);
    assert.throws(() => new MemoryNetwork(clock, { downloadBytesPerS: 0 }), RangeError);
    assert.throws(() => new MemoryNetwork(clock, { handshakeMs: -1 }), RangeError);
  });
});

describe('MemoryNetwork: download capacity', () => {
  test('N bytes at D bytes/s leave the downlink N/D s after they arrived, FIFO over all its links', () => {
    const { clock, net } = memNet({ latencyMs: 30 });
    const ac = pair(net, 'a', 'c');
    const bc = pair(net, 'b', 'c');
    clock.runUntilIdle();
    net.setDownloadBandwidth('c', 100_000);
    const t0 = clock.now();
    ac.la.send(filled(50_000, 1)); // reaches c's downlink at +30, out at +530
    bc.la.send(filled(50_000, 2)); // waits behind it: out at +1030
    clock.runUntilIdle();
    assert.deepEqual(arrivals(ac.rb, t0), [530]);
    assert.deepEqual(arrivals(bc.rb, t0), [1030]);
    // In series after the sender's uplink and the latency: arrivals at +530 and +1030 (a's uplink at
    // 100 kB/s), served at 50 kB/s: out at +1530 and +2530.
    net.setUploadBandwidth('a', 100_000);
    net.setDownloadBandwidth('c', 50_000);
    const t1 = clock.now();
    ac.la.send(filled(50_000, 3));
    ac.la.send(filled(50_000, 4));
    clock.runUntilIdle();
    assert.deepEqual(arrivals(ac.rb, t1).slice(1), [1530, 2530]);
    assert.deepEqual(
      ac.rb.data.map((d) => d.bytes[0]),
      [1, 3, 4],
    );
  });

  test('a downlink from the config applies to every peer; the close notice waits behind data', () => {
    const { clock, net } = memNet({ latencyMs: 10, downloadBytesPerS: 1000 });
    const { la, ra, rb } = pair(net, 'a', 'b');
    clock.runUntilIdle();
    const t0 = clock.now();
    la.send(filled(500, 1));
    la.destroy();
    clock.runUntilIdle();
    assert.deepEqual(arrivals(rb, t0), [510]);
    assert.deepEqual(
      rb.closes.map((c) => [c.atMs - t0, c.reason]),
      [[510, 'remote-closed']],
    );
    assert.equal(ra.closes.length, 1);
  });
});

describe('MemoryNetwork: handshake time', () => {
  test('handshakeMs (a constant or a function of the pair) is added before the signaling round trip', () => {
    const { clock, net } = memNet({ latencyMs: 40, handshakeMs: 300 });
    const { ra, rb } = pair(net, 'a', 'b');
    clock.runUntilIdle();
    assert.deepEqual(rb.connects, [340]);
    assert.deepEqual(ra.connects, [380]);
    const f = memNet({ latencyMs: 5, handshakeMs: (a, b) => (a === 'x' || b === 'x' ? 1000 : 100) });
    const xy = pair(f.net, 'x', 'y');
    const yz = pair(f.net, 'y', 'z');
    f.clock.runUntilIdle();
    assert.deepEqual([xy.rb.connects, xy.ra.connects], [[1005], [1010]]);
    assert.deepEqual([yz.rb.connects, yz.ra.connects], [[105], [110]]);
  });
});

describe('MemoryNetwork: NAT types and TURN', () => {
  // The table in peer/core/memory-nat.ts, row by row, columns in NAT_TYPES order (open, full-cone,
  // restricted-cone, port-restricted-cone, symmetric, udp-blocked, unknown); unknown behaves as a
  // port-restricted cone.
  const TABLE: Record<NatType, string> = {
    open: 'yyyyy-y',
    'full-cone': 'yyyyy-y',
    'restricted-cone': 'yyyyy-y',
    'port-restricted-cone': 'yyyy--y',
    symmetric: 'yyy----',
    'udp-blocked': '-------',
    unknown: 'yyyy--y',
  };

  test('which pairs connect directly (symmetric, as a table)', () => {
    const got: Record<string, string> = {};
    for (const a of NAT_TYPES) {
      got[a] = NAT_TYPES.map((b) => (connectsDirectly(a, b) ? 'y' : '-')).join('');
      for (const b of NAT_TYPES) assert.equal(connectsDirectly(a, b), connectsDirectly(b, a), `${a}/${b}`);
    }
    assert.deepEqual(got, TABLE);
  });

  test('compatible NATs connect directly, with srflx / prflx candidates', async () => {
    const { clock, net } = memNet({ latencyMs: 20 });
    net.setNatType('a', 'full-cone');
    net.setNatType('b', 'symmetric');
    net.setNatType('c', 'open');
    const ab = pair(net, 'a', 'b');
    const ca = pair(net, 'c', 'a');
    clock.runUntilIdle();
    assert.deepEqual(ab.ra.connects, [40]);
    assert.deepEqual(await ab.la.route!(), {
      local: 'srflx',
      remote: 'prflx',
      relayed: false,
      protocol: 'udp',
    });
    assert.deepEqual(await ab.lb.route!(), {
      local: 'srflx',
      remote: 'srflx',
      relayed: false,
      protocol: 'udp',
    });
    assert.deepEqual(await ca.la.route!(), {
      local: 'host',
      remote: 'srflx',
      relayed: false,
      protocol: 'udp',
    });
    assert.equal(net.natType('zz'), 'open', 'default');
    assert.throws(() => net.setNatType('a', 'carrier-grade' as NatType), TypeError);
  });

  test('incompatible pairs go through TURN: its latency on the handshake and every message, route relayed', async () => {
    const { clock, net } = memNet({ latencyMs: 20 });
    net.addTurnRelay({ id: 'turn1', uploadBytesPerS: Infinity, latencyMs: 15 });
    net.setNatType('a', 'port-restricted-cone');
    net.setNatType('b', 'symmetric');
    const { la, lb, ra, rb } = pair(net, 'a', 'b');
    clock.runUntilIdle();
    assert.deepEqual(rb.connects, [35]);
    assert.deepEqual(ra.connects, [70]);
    assert.deepEqual(await la.route!(), { local: 'srflx', remote: 'relay', relayed: true, protocol: 'udp' });
    assert.deepEqual(await lb.route!(), { local: 'relay', remote: 'srflx', relayed: true, protocol: 'udp' });
    const t0 = clock.now();
    la.send(filled(100, 1));
    lb.send(filled(100, 2));
    clock.runUntilIdle();
    assert.deepEqual(arrivals(rb, t0), [35]);
    assert.deepEqual(arrivals(ra, t0), [35]);
    assert.deepEqual(net.turnRelayStats('turn1'), { relayedBytes: 200, relayedMessages: 2, queued: 0 });
    assert.equal(net.totals().relayedBytes, 200);
  });

  test("a TURN relay's capacity is shared by every link through it; udp-blocked relays over TCP", async () => {
    const { clock, net } = memNet({ latencyMs: 10 });
    net.addTurnRelay({ id: 'big', uploadBytesPerS: Infinity, latencyMs: 0 });
    net.addTurnRelay({ id: 'small', uploadBytesPerS: 100_000, latencyMs: 5 });
    for (const p of ['a', 'b', 'c']) {
      net.setNatType(p, 'symmetric');
      net.setTurnRelay(p, 'small');
    }
    net.setNatType('d', 'udp-blocked');
    assert.throws(() => net.setTurnRelay('d', 'nope'), /unknown TURN relay/);
    const ab = pair(net, 'a', 'b');
    const cd = pair(net, 'c', 'd');
    clock.runUntilIdle();
    assert.deepEqual(await cd.la.route!(), {
      local: 'srflx',
      remote: 'relay',
      relayed: true,
      protocol: 'udp',
    });
    assert.deepEqual(await cd.lb.route!(), {
      local: 'relay',
      remote: 'prflx',
      relayed: true,
      protocol: 'tcp',
    });
    const t0 = clock.now();
    ab.la.send(filled(50_000, 1)); // relay: out at +500, then 15 ms
    cd.la.send(filled(50_000, 2)); // d relays through 'big' (the first), not 'small': its own path
    ab.lb.send(filled(50_000, 3)); // behind the first in 'small': out at +1000
    assert.equal(net.turnRelayStats('small')?.queued, 2);
    clock.runUntilIdle();
    assert.deepEqual(arrivals(ab.rb, t0), [515]);
    assert.deepEqual(arrivals(cd.rb, t0), [10]);
    assert.deepEqual(arrivals(ab.ra, t0), [1015]);
  });

  test('without a relay ICE fails: no connect, both ends close after iceFailureMs like simple-peer', () => {
    const { clock, net } = memNet({ latencyMs: 10, iceFailureMs: 5000 });
    net.setNatType('a', 'symmetric');
    net.setNatType('b', 'symmetric');
    const { ra, rb } = pair(net, 'a', 'b');
    clock.runUntilIdle();
    assert.deepEqual([ra.connects, rb.connects], [[], []]);
    assert.deepEqual(
      [...ra.closes, ...rb.closes].map((c) => [c.atMs, c.reason]),
      [
        [5000, ICE_FAILURE],
        [5000, ICE_FAILURE],
      ],
    );
    assert.match(ICE_FAILURE, /^webrtc-error: ERR_ICE_CONNECTION_FAILURE/);
    assert.equal(net.openLinks, 0);
    // iceFailureMs: Infinity stalls until the owner gives up (the engine's connect timeout).
    const s = memNet({ iceFailureMs: Infinity });
    s.net.setNatType('b', 'udp-blocked');
    const p = pair(s.net, 'a', 'b');
    assert.equal(s.clock.runUntilIdle(), true);
    assert.deepEqual([p.ra.connects, p.ra.closes, p.rb.closes], [[], [], []]);
    p.la.destroy();
    s.clock.runUntilIdle();
    assert.deepEqual(p.rb.closes, [], 'no path, no close notice');
    p.lb.destroy();
  });
});

describe('MemoryNetwork: loss', () => {
  test('a lost message is retransmitted one round trip later, holding back the next; nothing is dropped', () => {
    // Draws: message 1 lost twice (0.1, 0.1, then 0.99 = delivered), message 2 not lost, message 3 once.
    const { clock, net } = memNet({
      latencyMs: 25,
      lossRate: 0.2,
      random: scripted(0.1, 0.1, 0.99, 0.5, 0.1),
    });
    const { la, rb } = pair(net, 'a', 'b');
    clock.runUntilIdle();
    const t0 = clock.now();
    la.send(filled(10, 1)); // 25 + 2 × 50
    la.send(filled(10, 2)); // 25, held back behind message 1
    clock.advance(200);
    la.send(filled(10, 3)); // 200 + 25 + 50
    clock.runUntilIdle();
    assert.deepEqual(arrivals(rb, t0), [125, 125, 275]);
    assert.deepEqual(
      rb.data.map((d) => d.bytes[0]),
      [1, 2, 3],
    );
  });

  test('with a seeded random about p of the messages are delayed, all arrive in order', () => {
    const { clock, net } = memNet({
      latencyMs: 10,
      lossRate: (a, b) => (a < b ? 0.1 : 0),
      random: seeded(7),
    });
    const { la, rb } = pair(net, 'a', 'b');
    clock.runUntilIdle();
    let late = 0;
    for (let i = 0; i < 2000; i++) {
      const t = clock.now();
      la.send(filled(2, i & 0xff));
      clock.advance(100); // longer than any likely retransmission chain: delays are not masked
      const got = rb.data.at(-1);
      if (rb.data.length === i + 1 && got!.atMs - t > 10) late++;
    }
    clock.runUntilIdle();
    assert.equal(rb.data.length, 2000);
    assert.ok(rb.data.every((d, i) => d.bytes[0] === (i & 0xff)));
    assert.ok(late > 120 && late < 300, `late ${late} of 2000 (p = 0.1)`);
  });
});

describe('MemoryNetwork: counters and cost', () => {
  test('conservation: bytes sent = received + discarded, per peer and overall, through destroys and partitions', () => {
    const random = seeded(3);
    const { clock, net } = memNet({ latencyMs: 15, jitterMs: 10, lossRate: 0.05, random });
    net.setUploadBandwidth('a', 200_000);
    net.setDownloadBandwidth('c', 150_000);
    net.setNatType('d', 'udp-blocked');
    net.addTurnRelay({ id: 't', uploadBytesPerS: 300_000, latencyMs: 5 });
    const ends = [
      ['a', 'b'],
      ['a', 'c'],
      ['b', 'c'],
      ['c', 'd'],
    ] as const;
    const links = ends.map(([x, y]) => pair(net, x, y));
    clock.runUntilIdle();
    const received = new Map<string, number>();
    const count = (link: PeerLink, peer: string): void => {
      link.on('data', (bytes) => received.set(peer, (received.get(peer) ?? 0) + bytes.byteLength));
    };
    links.forEach((l, i) => {
      count(l.la, ends[i]![0]);
      count(l.lb, ends[i]![1]);
    });
    for (let step = 0; step < 400; step++) {
      const l = links[Math.floor(random() * links.length)]!;
      const end = random() < 0.5 ? l.la : l.lb;
      end.send(filled(1 + Math.floor(random() * 20_000), 0));
      if (step === 150) net.partition('b', 'c');
      if (step === 250) net.heal('b', 'c');
      if (step === 300) links[0]!.la.destroy();
      if (step === 330) links[3]!.lb.destroy();
      clock.advance(random() * 20);
    }
    const mid = net.totals();
    assert.ok(mid.inFlightBytes > 0);
    assert.equal(mid.sentBytes, mid.receivedBytes + mid.discardedBytes + mid.inFlightBytes);
    clock.runUntilIdle();
    const t = net.totals();
    assert.equal(t.inFlightBytes, 0);
    assert.equal(t.inFlightMessages, 0);
    assert.equal(t.sentBytes, t.receivedBytes + t.discardedBytes);
    assert.ok(t.discardedBytes > 0, 'something was discarded (destroy, partition)');
    assert.ok(t.relayedBytes > 0);
    assert.equal(t.peers, 4);
    let sent = 0;
    for (const p of ['a', 'b', 'c', 'd']) {
      const s = net.stats(p);
      sent += s.sentBytes;
      assert.equal(s.receivedBytes, received.get(p) ?? 0, `received by ${p}`);
    }
    assert.equal(sent, t.sentBytes);
    assert.deepEqual(net.stats('nobody'), {
      sentBytes: 0,
      sentMessages: 0,
      receivedBytes: 0,
      receivedMessages: 0,
      discardedBytes: 0,
      discardedMessages: 0,
    });
  });

  test('timers: one per arrival instant of a link with unlimited rates, one in flight per finite server', () => {
    const { clock, net } = memNet({ latencyMs: 10 });
    const { la, lb, rb } = pair(net, 'a', 'b');
    clock.runUntilIdle();
    for (let i = 0; i < 100; i++) la.send(filled(1000, i));
    assert.equal(clock.pendingTimers, 1, 'a burst due at one instant shares one arrival timer');
    clock.advance(5);
    la.send(filled(1000, 100));
    assert.equal(clock.pendingTimers, 2, 'a later message, its own');
    clock.runUntilIdle();
    assert.deepEqual(
      rb.data.map((d) => [d.atMs - rb.data[0]!.atMs, d.bytes[0]]),
      Array.from({ length: 101 }, (_, i) => [i < 100 ? 0 : 5, i]),
      'every message arrives, in order, at its own instant',
    );
    clock.runUntilIdle();
    net.setUploadBandwidth('b', 1_000_000);
    net.setDownloadBandwidth('a', 1_000_000);
    for (let i = 0; i < 100; i++) lb.send(filled(1000, 1));
    assert.equal(clock.pendingTimers, 1, 'the uplink holds one timer, whatever its queue');
    assert.equal(clock.advance(1), 1);
    assert.equal(clock.pendingTimers, 2, 'the next transmission and the first arrival');
    clock.runUntilIdle();
  });

  test('a message due at an instant whose arrivals were already delivered gets a timer of its own', () => {
    const { clock, net } = memNet({ latencyMs: 0 });
    const { la, lb, rb } = pair(net, 'a', 'b');
    clock.runUntilIdle();
    const t = clock.now();
    la.send(filled(10, 1));
    // Received at t, and answered at t: the answer is due at t too, after the group it would join has gone.
    let echoed = false;
    lb.on('data', () => {
      if (echoed) return;
      echoed = true;
      clock.setTimeout(() => la.send(filled(10, 2)), 0);
    });
    clock.runUntilIdle();
    assert.deepEqual(
      rb.data.map((d) => [d.atMs, d.bytes[0]]),
      [
        [t, 1],
        [t, 2],
      ],
    );
  });
});
