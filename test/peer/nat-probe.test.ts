/**
 * A browser's NAT type from ICE (peer/platform/ice-nat-probe.ts): the classification of what ICE
 * gathered against two addresses of one STUN server, the prober's gathering (with a scripted
 * RTCPeerConnection), and the engine's use of it: probe once after joining when the type is unknown
 * and the tracker hands out probe addresses, report the type, rejoin with it.
 * Real Chromium behind real NATs: test/natlab; a real browser on loopback: test/player/swarm.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NatType } from '../../protocol/index.ts';
import type { NatProber } from '../../peer/core/seams.ts';
import {
  IceNatProber,
  natTypeFromGathering,
  type RtcPeerConnectionCtor,
} from '../../peer/platform/ice-nat-probe.ts';
import { addPeer, world } from './harness.ts';

const host = (ip: string, port: number) =>
  `candidate:1 1 udp 2122260223 ${ip} ${port} typ host generation 0 ufrag abcd network-id 1`;
const srflx = (ip: string, port: number, raddr: string, rport: number) =>
  `candidate:2 1 udp 1686052607 ${ip} ${port} typ srflx raddr ${raddr} rport ${rport} generation 0 ufrag abcd network-id 1`;
const PROBE = ['stun:203.0.113.10:3478', 'stun:203.0.113.11:3479'];

describe('natTypeFromGathering', () => {
  const done = (candidates: string[], failedUrls = 0, complete = true) =>
    natTypeFromGathering({ candidates, failedUrls, complete });

  test('one reflexive address for both servers: a cone (reported as the most restrictive one)', () => {
    assert.equal(
      done([host('192.0.2.10', 40000), srflx('203.0.113.20', 40000, '192.0.2.10', 40000)]),
      'port-restricted-cone',
    );
  });

  test('two reflexive addresses from one socket: symmetric', () => {
    assert.equal(
      done([
        host('192.0.2.10', 40000),
        srflx('203.0.113.20', 50001, '192.0.2.10', 40000),
        srflx('203.0.113.20', 50002, '192.0.2.10', 40000),
      ]),
      'symmetric',
    );
  });

  test('one reflexive address per socket on two interfaces is still a cone', () => {
    assert.equal(
      done([
        host('192.0.2.10', 40000),
        host('198.51.100.7', 40002),
        srflx('203.0.113.20', 40000, '192.0.2.10', 40000),
        srflx('203.0.113.21', 40002, '198.51.100.7', 40002),
      ]),
      'port-restricted-cone',
    );
  });

  test('bases hidden (mDNS): symmetric only with more reflexive addresses than host sockets', () => {
    const hidden = (ip: string, port: number) => srflx(ip, port, '0.0.0.0', 0);
    const hosts = [
      'candidate:1 1 udp 2122260223 6d1f.local 40000 typ host generation 0',
      'candidate:3 1 udp 2122194687 7e2a.local 40002 typ host generation 0',
    ];
    assert.equal(
      done([...hosts, hidden('203.0.113.20', 1), hidden('203.0.113.21', 2)]),
      'port-restricted-cone',
    );
    assert.equal(
      done([...hosts, hidden('203.0.113.20', 1), hidden('203.0.113.20', 2), hidden('203.0.113.21', 3)]),
      'symmetric',
    );
  });

  test('no reflexive candidate: open only when both servers answered and gathering completed', () => {
    const hosts = [host('203.0.113.30', 40000)];
    assert.equal(done(hosts), 'open');
    assert.equal(done(hosts, 1), 'unknown', 'a server did not answer: maybe UDP is blocked');
    assert.equal(done(hosts, 0, false), 'unknown', 'gathering timed out');
    assert.equal(done([]), 'unknown', 'no host candidate either');
  });

  test('TCP candidates and lines that are not candidates are ignored', () => {
    assert.equal(
      done([
        host('192.0.2.10', 40000),
        'candidate:4 1 tcp 1518280447 203.0.113.20 9 typ srflx raddr 192.0.2.10 rport 40000 tcptype active',
        'candidate:4 1 tcp 1518280447 203.0.113.20 10 typ srflx raddr 192.0.2.10 rport 40000 tcptype active',
        'not a candidate',
        'candidate:5 1 udp 1 203.0.113.20 notaport typ srflx raddr 192.0.2.10 rport 40000',
        srflx('203.0.113.20', 40000, '192.0.2.10', 40000),
      ]),
      'port-restricted-cone',
    );
  });
});

/** A scripted RTCPeerConnection: after setLocalDescription, emits `events` (a candidate, an error, or the end). */
function scripted(
  events: ({ candidate: string } | { errorUrl: string } | 'end')[],
  seen: { urls?: string[]; closed?: boolean },
) {
  return class {
    onicecandidate: ((e: { candidate: { candidate: string } | null }) => void) | null = null;
    onicecandidateerror: ((e: { url?: string }) => void) | null = null;
    constructor(config: { iceServers: { urls: string }[] }) {
      seen.urls = config.iceServers.map((s) => s.urls);
    }
    createDataChannel(): unknown {
      return {};
    }
    async createOffer() {
      return { type: 'offer', sdp: 'v=0' };
    }
    async setLocalDescription(): Promise<void> {
      setTimeout(() => {
        for (const e of events) {
          if (e === 'end') this.onicecandidate?.({ candidate: null });
          else if ('candidate' in e) this.onicecandidate?.({ candidate: { candidate: e.candidate } });
          else this.onicecandidateerror?.({ url: e.errorUrl });
        }
      }, 1);
    }
    close(): void {
      seen.closed = true;
    }
  } satisfies RtcPeerConnectionCtor;
}

describe('IceNatProber', () => {
  test('gathers against both probe addresses and classifies what it saw', async () => {
    const seen: { urls?: string[]; closed?: boolean } = {};
    const prober = new IceNatProber({
      RTCPeerConnection: scripted(
        [
          { candidate: host('192.0.2.10', 40000) },
          { candidate: srflx('203.0.113.20', 50001, '192.0.2.10', 40000) },
          { candidate: srflx('203.0.113.20', 50002, '192.0.2.10', 40000) },
          'end',
        ],
        seen,
      ),
    });
    assert.equal(await prober.probe(PROBE), 'symmetric');
    assert.deepEqual(seen.urls, PROBE);
    assert.equal(seen.closed, true, 'the probe connection is closed');
  });

  test('a server that answers with an error leaves the type unknown; so does a gathering that never ends', async () => {
    const seen = {};
    const failing = new IceNatProber({
      RTCPeerConnection: scripted(
        [{ candidate: host('192.0.2.10', 40000) }, { errorUrl: PROBE[1]! }, 'end'],
        seen,
      ),
    });
    assert.equal(await failing.probe(PROBE), 'unknown');
    const endless = new IceNatProber({
      RTCPeerConnection: scripted([{ candidate: host('192.0.2.10', 40000) }], seen),
      timeoutMs: 50,
    });
    const g = await endless.gather(PROBE);
    assert.equal(g.complete, false);
    assert.equal(natTypeFromGathering(g), 'unknown');
  });

  test('a flood of candidates is bounded', async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => ({ candidate: host('192.0.2.10', 1000 + i) }));
    const g = await new IceNatProber({ RTCPeerConnection: scripted([...many, 'end'], {}) }).gather(PROBE);
    assert.equal(g.candidates.length, 64);
  });
});

describe('the engine learns its NAT type after joining', () => {
  const prober = (answer: NatType) => {
    const calls: string[][] = [];
    const p: NatProber & { calls: string[][] } = {
      calls,
      probe: async (urls) => {
        calls.push([...urls]);
        return answer;
      },
    };
    return p;
  };

  test('an unknown type is probed once against the tracker’s addresses, reported, and kept for a rejoin', async (t) => {
    const w = world(t, { tracker: { natProbe: PROBE } });
    const nat = prober('symmetric');
    const A = await addPeer(w, 'A', { natProber: nat });
    await w.sim.until(() => w.tracker.reportsOf(A.id).length > 0, 500, 'a report');
    assert.deepEqual(nat.calls, [PROBE]);
    assert.equal(A.engine.natType, 'symmetric');
    const first = w.tracker.reports.find((r) => r.peerId === A.id)!;
    assert.equal(first.report.natType, 'symmetric');
    assert.ok(
      first.at < w.tracker.opts.reportIntervalMs,
      `reported at once (at ${first.at} ms), not at the interval`,
    );
    assert.ok(
      w.tracker.reports.every((r) => r.valid),
      'reports with natType pass the schema',
    );
    assert.equal(w.tracker.joins[0]!.natType, 'unknown', 'joined before knowing');
    // A tracker that forgot the peer (restart): the rejoin carries the type learned.
    w.tracker.disconnect(A.id);
    A.conn!.reconnect();
    await w.sim.until(() => w.tracker.joins.length === 2, 2000, 'the rejoin');
    assert.equal(w.tracker.joins[1]!.natType, 'symmetric');
    assert.equal(nat.calls.length, 1, 'not probed again');
  });

  test('no probe for a declared type, none without the tracker’s addresses, nothing reported when unknown', async (t) => {
    const w = world(t, { tracker: { natProbe: PROBE } });
    const declared = prober('symmetric');
    const B = await addPeer(w, 'B', { natProber: declared, natType: 'full-cone' });
    const inconclusive = prober('unknown');
    const C = await addPeer(w, 'C', { natProber: inconclusive });
    await w.sim.run(w.tracker.opts.reportIntervalMs + 100);
    assert.deepEqual(declared.calls, []);
    assert.equal(w.tracker.reportsOf(B.id).at(-1)!.natType, 'full-cone');
    assert.equal(inconclusive.calls.length, 1);
    assert.equal(C.engine.natType, 'unknown');
    assert.equal(w.tracker.reportsOf(C.id).at(-1)!.natType, undefined);

    const w2 = world(t);
    const unused = prober('symmetric');
    await addPeer(w2, 'D', { natProber: unused });
    await w2.sim.run(w2.tracker.opts.reportIntervalMs + 100);
    assert.deepEqual(unused.calls, [], 'the tracker gave no probe addresses');
  });
});
