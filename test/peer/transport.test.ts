import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { signalDataSchema, type SignalData } from '../../protocol/index.ts';
import { ManualClock } from '../../peer/core/clock.ts';
import { MemoryNetwork, type MemoryNetworkConfig } from '../../peer/core/memory-transport.ts';
import type { PeerLink } from '../../peer/core/seams.ts';
import {
  loopbackCandidatesOnly,
  routeFromStats,
  SimplePeerTransport,
} from '../../peer/platform/simple-peer-transport.ts';
import { loadWrtc } from '../../peer/node/wrtc.ts';
import { memNet, pair, record } from '../helpers/memory-links.ts';

const KiB = 1024;

// ---------------------------------------------------------------------------------------------------
// ManualClock

describe('ManualClock', () => {
  test('runs due timers in time order, ties in scheduling order, with now() at each due time', () => {
    const clock = new ManualClock();
    const log: string[] = [];
    const at = (name: string) => () => log.push(`${name}@${clock.now()}`);
    clock.setTimeout(at('c'), 30);
    clock.setTimeout(at('a'), 10);
    clock.setTimeout(at('b1'), 20);
    clock.setTimeout(at('b2'), 20);
    clock.setTimeout(at('z'), 0);
    assert.deepEqual(log, [], 'never synchronous');
    assert.equal(clock.pendingTimers, 5);
    assert.equal(clock.advance(20), 4);
    assert.deepEqual(log, ['z@0', 'a@10', 'b1@20', 'b2@20']);
    assert.equal(clock.now(), 20);
    clock.advance(9.5);
    assert.equal(clock.now(), 29.5);
    assert.equal(log.length, 4);
    clock.advance(0.5);
    assert.deepEqual(log.at(-1), 'c@30');
    assert.equal(clock.pendingTimers, 0);
  });

  test('runs timers scheduled by timers within the same advance, in order', () => {
    const clock = new ManualClock();
    const log: string[] = [];
    clock.setTimeout(() => {
      log.push(`outer@${clock.now()}`);
      clock.setTimeout(() => log.push(`same-instant@${clock.now()}`), 0);
      clock.setTimeout(() => {
        log.push(`inner@${clock.now()}`);
        clock.setTimeout(() => log.push(`too-late@${clock.now()}`), 100);
      }, 5);
    }, 10);
    clock.setTimeout(() => log.push(`other@${clock.now()}`), 12);
    clock.advance(50);
    assert.deepEqual(log, ['outer@10', 'same-instant@10', 'other@12', 'inner@15']);
    assert.equal(clock.nextDueMs(), 115);
    clock.advance(65);
    assert.deepEqual(log.at(-1), 'too-late@115');
  });

  test('clearTimeout cancels; unknown handles are ignored', () => {
    const clock = new ManualClock();
    let ran = 0;
    const h = clock.setTimeout(() => ran++, 5);
    clock.setTimeout(() => ran++, 6);
    clock.clearTimeout(h);
    clock.clearTimeout(h);
    clock.clearTimeout(undefined);
    clock.clearTimeout(12345);
    assert.equal(clock.pendingTimers, 1);
    clock.advance(10);
    assert.equal(ran, 1);
    // Many cleared timers do not accumulate.
    for (let i = 0; i < 10_000; i++) clock.clearTimeout(clock.setTimeout(() => ran++, 1000 + i));
    assert.equal(clock.pendingTimers, 0);
    clock.advance(20_000);
    assert.equal(ran, 1);
  });

  test('runUntilIdle jumps through timers and stops at the limit when timers keep coming', () => {
    const clock = new ManualClock({ startMs: 1000 });
    const log: number[] = [];
    clock.setTimeout(() => clock.setTimeout(() => log.push(clock.now()), 500), 250);
    assert.equal(clock.runUntilIdle(), true);
    assert.deepEqual(log, [1750]);
    assert.equal(clock.now(), 1750, 'time stops at the last timer');
    const tick = (): void => {
      log.push(clock.now());
      clock.setTimeout(tick, 100);
    };
    clock.setTimeout(tick, 100);
    assert.equal(clock.runUntilIdle(1000), false);
    assert.equal(clock.now(), 2750);
    assert.deepEqual(log.slice(1), [1850, 1950, 2050, 2150, 2250, 2350, 2450, 2550, 2650, 2750]);
  });

  test('wallNow follows now from a settable start', () => {
    const clock = new ManualClock({ startMs: 5, wallStartMs: Date.UTC(2030, 0, 1) });
    assert.equal(clock.now(), 5);
    assert.equal(clock.wallNow(), Date.UTC(2030, 0, 1));
    clock.advance(1500);
    assert.equal(clock.now(), 1505);
    assert.equal(clock.wallNow(), Date.UTC(2030, 0, 1) + 1500);
    clock.setWallNow(42);
    assert.equal(clock.wallNow(), 42);
    assert.equal(clock.now(), 1505, 'monotonic time unaffected');
    clock.advance(8);
    assert.equal(clock.wallNow(), 50);
  });

  test('an error in a timer propagates and leaves later timers pending', () => {
    const clock = new ManualClock();
    let later = 0;
    clock.setTimeout(() => {
      throw new Error('boom');
    }, 10);
    clock.setTimeout(() => later++, 20);
    assert.throws(() => clock.advance(30), /boom/);
    assert.equal(clock.now(), 10);
    assert.equal(later, 0);
    clock.advance(20);
    assert.equal(later, 1);
  });

  test('rejects bad arguments', () => {
    const clock = new ManualClock();
    assert.throws(() => clock.advance(-1), RangeError);
    assert.throws(() => clock.advance(Number.NaN), RangeError);
    assert.throws(() => new ManualClock({ startMs: Number.NaN }), RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------
// MemoryNetwork

function connected(config: Partial<MemoryNetworkConfig> = {}) {
  const { clock, net } = memNet(config);
  const p = pair(net, 'a', 'b');
  clock.runUntilIdle();
  assert.ok(p.la.connected && p.lb.connected);
  return { clock, net, ...p };
}

const filled = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

describe('MemoryNetwork', () => {
  test('signaling: offer then answer through signal events, then both connect', () => {
    const { clock, net } = memNet({ latencyMs: 40 });
    const { la, lb, ra, rb } = pair(net, 'a', 'b');
    assert.equal(la.connected, false);
    assert.equal(la.remoteId, 'b');
    assert.equal(lb.remoteId, 'a');
    clock.advance(0);
    assert.equal(ra.signals[0] && 'type' in ra.signals[0] ? ra.signals[0].type : undefined, 'offer');
    assert.equal(rb.signals[0] && 'type' in rb.signals[0] ? rb.signals[0].type : undefined, 'answer');
    assert.equal(ra.signals.length, 1);
    assert.equal(rb.signals.length, 1);
    clock.runUntilIdle();
    // Answer at 0: the answerer connects one latency later, the initiator one more latency later.
    assert.deepEqual(rb.connects, [40]);
    assert.deepEqual(ra.connects, [80]);
    assert.ok(la.connected && lb.connected);
    assert.equal(net.openLinks, 2);
  });

  test('createLink rejects a foreign localId and self links', () => {
    const { net } = memNet();
    const t = net.transport('a');
    assert.throws(() => t.createLink({ localId: 'x', remoteId: 'b', initiator: true, iceServers: [] }));
    assert.throws(() => t.createLink({ localId: 'a', remoteId: 'a', initiator: true, iceServers: [] }));
    assert.throws(() => new MemoryNetwork(new ManualClock(), { latencyMs: -1 }), RangeError);
    assert.throws(() => new MemoryNetwork(new ManualClock(), { uploadBytesPerS: 0 }), RangeError);
  });

  test('latency is respected exactly, per pair', () => {
    const { clock, net, la, lb, ra, rb } = connected({ latencyMs: 25 });
    const t0 = clock.now();
    la.send(filled(10, 1));
    lb.send(filled(10, 2));
    clock.advance(24.999);
    assert.equal(rb.data.length, 0);
    clock.advance(0.001);
    assert.deepEqual(
      rb.data.map((d) => d.atMs),
      [t0 + 25],
    );
    assert.deepEqual(
      ra.data.map((d) => d.atMs),
      [t0 + 25],
    );
    net.setLatency('b', 'a', 70);
    la.send(filled(1, 3));
    clock.runUntilIdle();
    assert.equal(rb.data[1]?.atMs, t0 + 25 + 70);
  });

  test('bandwidth: N bytes at B bytes/s arrive after N/B s + latency, in FIFO order', () => {
    const { clock, net, la, rb } = connected({ latencyMs: 30 });
    net.setUploadBandwidth('a', 64 * KiB); // bytes/s
    const t0 = clock.now();
    for (let i = 0; i < 8; i++) la.send(filled(16 * KiB, i)); // 128 KiB: 2 s
    assert.equal(la.bufferedAmount, 128 * KiB);
    clock.runUntilIdle();
    assert.deepEqual(
      rb.data.map((d) => d.atMs - t0),
      [250, 500, 750, 1000, 1250, 1500, 1750, 2000].map((ms) => ms + 30),
    );
    assert.deepEqual(
      rb.data.map((d) => d.bytes[0]),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    assert.equal(la.bufferedAmount, 0);
  });

  test('per-peer upload is shared by its links; a link bandwidth is in series with it', () => {
    const { clock, net } = memNet({ latencyMs: 0 });
    const ab = pair(net, 'a', 'b');
    const ac = pair(net, 'a', 'c');
    clock.runUntilIdle();
    net.setUploadBandwidth('a', 100_000);
    const t0 = clock.now();
    ab.la.send(filled(50_000, 1)); // 0.5 s
    ac.la.send(filled(50_000, 2)); // 0.5 s more: the same uplink
    clock.runUntilIdle();
    assert.equal(ab.rb.data[0]?.atMs, t0 + 500);
    assert.equal(ac.rb.data[0]?.atMs, t0 + 1000);
    // A 10 kB/s bottleneck on a → c alone: that link is slow, a → b is not.
    net.setLinkBandwidth('a', 'c', 10_000);
    const t1 = clock.now();
    ac.la.send(filled(10_000, 3)); // 1 s on the link, then 0.1 s on a's uplink
    ab.la.send(filled(10_000, 4)); // 0.1 s on a's uplink
    clock.runUntilIdle();
    assert.equal(ab.rb.data[1]?.atMs, t1 + 100);
    assert.equal(ac.rb.data[1]?.atMs, t1 + 1100);
  });

  test('bufferedAmount counts bytes not yet on the wire; drain fires once when it falls to the low-water mark', () => {
    const { clock, net, la, ra, rb } = connected({ latencyMs: 10 });
    net.setUploadBandwidth('a', 64 * KiB);
    const t0 = clock.now();
    for (let i = 0; i < 8; i++) la.send(filled(64 * KiB, i)); // 512 KiB, one message per second
    assert.equal(la.bufferedAmount, 512 * KiB);
    clock.advance(1000);
    assert.equal(la.bufferedAmount, 448 * KiB);
    assert.equal(rb.data.length, 0, 'on the wire, not yet arrived');
    clock.advance(10);
    assert.equal(rb.data.length, 1);
    clock.runUntilIdle();
    // 256 KiB (the default low-water mark) left after 4 s.
    assert.deepEqual(ra.drains, [t0 + 4000]);
    assert.equal(rb.data.length, 8);
    // Staying under the low-water mark: no drain.
    la.send(filled(64 * KiB, 9));
    assert.equal(la.bufferedAmount, 64 * KiB);
    clock.runUntilIdle();
    assert.equal(ra.drains.length, 1);
  });

  test('unlimited bandwidth: nothing buffered, no drain', () => {
    const { clock, la, ra, rb } = connected({ lowWaterMarkBytes: 0 });
    la.send(filled(64 * KiB, 1));
    assert.equal(la.bufferedAmount, 0);
    clock.runUntilIdle();
    assert.equal(ra.drains.length, 0);
    assert.equal(rb.data.length, 1);
  });

  test('messages stay whole and in order when latency drops mid-flight', () => {
    const { clock, net, la, rb } = connected({ latencyMs: 100 });
    const buf = new Uint8Array(300);
    for (let i = 0; i < 300; i++) {
      buf.fill(i & 0xff);
      la.send(buf.subarray(0, i + 1));
      if (i === 150) net.setLatency('a', 'b', 1);
      if (i % 7 === 0) clock.advance(1);
    }
    clock.runUntilIdle();
    assert.equal(rb.data.length, 300);
    rb.data.forEach(({ bytes }, i) => {
      assert.equal(bytes.byteLength, i + 1);
      assert.ok(bytes.every((v) => v === (i & 0xff)));
    });
    for (let i = 1; i < 300; i++) assert.ok(rb.data[i]!.atMs >= rb.data[i - 1]!.atMs);
  });

  test('destroy: data on the wire arrives one latency after it was sent, then remote-closed one latency after the destroy', () => {
    const { clock, net, la, lb, ra, rb } = connected({ latencyMs: 50 });
    const t0 = clock.now();
    la.send(filled(100, 1));
    clock.advance(20);
    la.destroy('bye');
    assert.deepEqual(ra.closes, [{ atMs: t0 + 20, reason: 'bye' }]);
    clock.runUntilIdle();
    assert.deepEqual(
      rb.data.map((d) => d.atMs),
      [t0 + 50],
    );
    assert.deepEqual(rb.closes, [{ atMs: t0 + 70, reason: 'remote-closed' }]);
    assert.equal(lb.connected, false);
    assert.equal(net.openLinks, 0);
  });

  test('destroy discards bytes not yet on the wire', () => {
    const { clock, net, la, rb } = connected({ latencyMs: 5 });
    net.setUploadBandwidth('a', 1000);
    la.send(filled(500, 1)); // on the wire at +500 ms
    la.send(filled(500, 2)); // at +1000 ms
    clock.advance(600);
    la.destroy();
    assert.equal(la.bufferedAmount, 0);
    clock.runUntilIdle();
    assert.deepEqual(
      rb.data.map((d) => d.bytes[0]),
      [1],
    );
    assert.equal(rb.closes[0]?.reason, 'remote-closed');
  });

  test('partition: messages silently dropped, no close; heal lets traffic (and a lost close) through', () => {
    const { clock, net, la, lb, ra, rb } = connected({ latencyMs: 10 });
    net.partition('b', 'a');
    assert.ok(net.isBlocked('a', 'b'));
    la.send(filled(10, 1));
    lb.send(filled(10, 2));
    clock.advance(5_000);
    assert.equal(rb.data.length + ra.data.length, 0);
    assert.equal(ra.closes.length + rb.closes.length, 0);
    assert.ok(la.connected && lb.connected, 'a silent neighbour looks connected');
    net.heal('a', 'b');
    la.send(filled(10, 3));
    clock.runUntilIdle();
    assert.deepEqual(
      rb.data.map((d) => d.bytes[0]),
      [3],
    );
    // A close during a partition is not noticed until it heals.
    net.cut('a');
    la.destroy('gone');
    clock.advance(1000);
    assert.equal(rb.closes.length, 0);
    net.restore('a');
    clock.runUntilIdle();
    assert.equal(rb.closes[0]?.reason, 'remote-closed');
  });

  test('a handshake across a partition never completes', () => {
    const { clock, net } = memNet();
    net.partition('a', 'b');
    const { ra, rb } = pair(net, 'a', 'b');
    clock.runUntilIdle();
    assert.equal(ra.signals.length, 1, 'signaling goes through the tracker, not the partition');
    assert.deepEqual(ra.connects, []);
    assert.deepEqual(rb.connects, []);
  });

  test('invalid signals close the link with a memory-signal-invalid reason', () => {
    const { clock, net } = memNet();
    const lb = net
      .transport('b')
      .createLink({ localId: 'b', remoteId: 'a', initiator: false, iceServers: [] });
    const rb = record(lb, clock);
    lb.signal({ type: 'offer', sdp: 'v=0 real sdp' });
    assert.match(rb.closes[0]?.reason ?? '', /^memory-signal-invalid/);
    // An offer meant for another pair.
    const lx = net
      .transport('x')
      .createLink({ localId: 'x', remoteId: 'y', initiator: true, iceServers: [] });
    const rx = record(lx, clock);
    clock.advance(0);
    const lb2 = net
      .transport('b')
      .createLink({ localId: 'b', remoteId: 'a', initiator: false, iceServers: [] });
    const rb2 = record(lb2, clock);
    lb2.signal(rx.signals[0]!);
    assert.match(rb2.closes[0]?.reason ?? '', /another link/);
  });
});

function once(
  link: PeerLink,
  event: 'connect' | 'data' | 'close' | 'drain',
  timeoutMs = 10_000,
): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), timeoutMs);
    link.once(event, (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Real WebRTC on loopback

describe('routeFromStats', () => {
  const cand = (id: string, candidateType: string, type = 'local-candidate') => ({
    id,
    type,
    candidateType,
    protocol: 'udp',
  });
  test('the transport’s selected pair (standard), with candidate types and protocol', () => {
    const entries = [
      cand('L1', 'host'),
      cand('L2', 'relay'),
      cand('R1', 'srflx', 'remote-candidate'),
      {
        id: 'P1',
        type: 'candidate-pair',
        localCandidateId: 'L1',
        remoteCandidateId: 'R1',
        nominated: true,
        state: 'succeeded',
      },
      {
        id: 'P2',
        type: 'candidate-pair',
        localCandidateId: 'L2',
        remoteCandidateId: 'R1',
        state: 'succeeded',
      },
      { id: 'T', type: 'transport', selectedCandidatePairId: 'P2' },
    ];
    assert.deepEqual(routeFromStats(entries), {
      local: 'relay',
      remote: 'srflx',
      relayed: true,
      protocol: 'udp',
    });
  });
  test('falls back to a pair flagged selected, then to a succeeded nominated pair; unknown types', () => {
    const base = [cand('L1', 'srflx'), cand('R1', 'weird', 'remote-candidate')];
    const pair = { id: 'P', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1' };
    assert.deepEqual(routeFromStats([...base, { ...pair, selected: true }]), {
      local: 'srflx',
      remote: 'unknown',
      relayed: false,
      protocol: 'udp',
    });
    assert.equal(routeFromStats([...base, { ...pair, nominated: true, state: 'succeeded' }])?.local, 'srflx');
    assert.equal(routeFromStats([...base, { ...pair, nominated: true, state: 'in-progress' }]), undefined);
    assert.equal(routeFromStats([]), undefined);
  });
});

describe('SimplePeerTransport over @roamhq/wrtc on loopback', () => {
  // Connecting, data, backpressure and close: the contract suite (transport-contract.test.ts).
  test(
    'signals only loopback candidates (offer, answer, trickled candidates) and reports a host route',
    { timeout: 120_000 },
    async () => {
      const wrtc = await loadWrtc();
      const transport = new SimplePeerTransport({ wrtc, candidateFilter: loopbackCandidatesOnly });
      const a = transport.createLink({ localId: 'a', remoteId: 'b', initiator: true, iceServers: [] });
      const b = transport.createLink({ localId: 'b', remoteId: 'a', initiator: false, iceServers: [] });
      try {
        // The relay (our tracker stand-in) checks that only loopback candidates leave a peer, and drops
        // any other as a second line of defence.
        const foreign: string[] = [];
        const kinds: string[] = [];
        const relay = (to: PeerLink) => (s: SignalData) => {
          const data = signalDataSchema.parse(s);
          if ('type' in data) kinds.push(data.type);
          if ('type' in data && data.type === 'candidate') {
            if (!loopbackCandidatesOnly(data.candidate.candidate))
              return void foreign.push(data.candidate.candidate);
          } else if ('sdp' in data && data.sdp) {
            const lines = data.sdp.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
            foreign.push(...lines.filter((l) => !loopbackCandidatesOnly(l)));
          }
          to.signal(data);
        };
        a.on('signal', relay(b));
        b.on('signal', relay(a));
        await Promise.all([once(a, 'connect', 60_000), once(b, 'connect', 60_000)]);
        assert.deepEqual(foreign, [], 'only 127.0.0.1 candidates are signalled');
        assert.equal(kinds[0], 'offer');
        assert.ok(kinds.includes('answer'));
        assert.ok(kinds.includes('candidate'));
        // The selected pair, from the connection's stats: loopback host candidates, no relay.
        const route = await a.route!();
        assert.equal(route?.local, 'host');
        assert.ok(route && ['host', 'prflx'].includes(route.remote), JSON.stringify(route));
        assert.equal(route?.relayed, false);
      } finally {
        a.destroy();
        b.destroy();
      }
    },
  );

  test('a simple-peer error closes the link with a webrtc-error reason', async () => {
    const transport = new SimplePeerTransport({ wrtc: await loadWrtc() });
    const link = transport.createLink({ localId: 'b', remoteId: 'a', initiator: false, iceServers: [] });
    const closed = once(link, 'close');
    link.signal({ type: 'pranswer' }); // no sdp: simple-peer rejects it
    const [reason] = (await closed) as [string];
    assert.match(reason, /^webrtc-error: ERR_SIGNALING /);
    link.destroy();
  });

  test('a peer without wrtc in Node fails at construction, and ICE servers are never defaulted', async () => {
    const wrtc = (await loadWrtc()) as { RTCPeerConnection: new (c: unknown) => unknown };
    const configs: unknown[] = [];
    // A wrapper that records the configuration the peer connection is created with.
    class Recording extends (wrtc.RTCPeerConnection as unknown as new (c: unknown) => { close(): void }) {
      constructor(config: unknown) {
        configs.push(config);
        super(config);
      }
    }
    const transport = new SimplePeerTransport({ wrtc: { ...wrtc, RTCPeerConnection: Recording } });
    const link = transport.createLink({ localId: 'a', remoteId: 'b', initiator: true, iceServers: [] });
    link.destroy();
    assert.deepEqual((configs[0] as { iceServers: unknown }).iceServers, []);
    assert.throws(() =>
      new SimplePeerTransport().createLink({ localId: 'a', remoteId: 'b', initiator: true, iceServers: [] }),
    );
  });
});
