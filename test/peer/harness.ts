/**
 * A small world for engine tests that play attacks and faults (budgets.test.ts, resilience.test.ts):
 * real engines on a ManualClock and a MemoryNetwork, a fake origin with real signed segments, a fake
 * tracker, and hand-driven RawPeers. engine.test.ts uses it too.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { TestContext } from 'node:test';
import type { Attestation, WireMessage } from '../../protocol/index.ts';
import { ManualClock } from '../../peer/core/clock.ts';
import {
  PeerEngine,
  type EngineEvents,
  type EngineOptions,
  type LoadResult,
} from '../../peer/core/engine.ts';
import { MemoryNetwork, type MemoryNetworkConfig } from '../../peer/core/memory-transport.ts';
import type { Neighbour } from '../../peer/core/neighbour.ts';
import { MemorySegmentStore } from '../../peer/core/segment-store.ts';
import type { NatProber } from '../../peer/core/seams.ts';
import {
  FakeOrigin,
  FakeTracker,
  RawPeer,
  Sim,
  type FakeOriginOptions,
  type FakeTrackerConnection,
  type FakeTrackerOptions,
  type RawPeerOptions,
} from './fakes.ts';

export const R = '360p';
export const SEG = 100_000;
export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** A 16-character peer id that sorts by its first letter. */
export const pid = (name: string) => name.padEnd(16, '0');

export type Loaded = Parameters<EngineEvents['segment-loaded']>[0];
export type Rejected = Parameters<EngineEvents['segment-rejected']>[0];
export type Closed = Parameters<EngineEvents['peer-closed']>[0];
export type EngineErrorInfo = Parameters<EngineEvents['error']>[0];

export interface Peer {
  id: string;
  engine: PeerEngine;
  store: MemorySegmentStore;
  conn: FakeTrackerConnection | undefined;
  /** Segments loaded, with the clock time they were. */
  loaded: (Loaded & { at: number })[];
  rejected: Rejected[];
  closed: Closed[];
  connected: string[];
  errors: EngineErrorInfo[];
  /** Requests neighbours sent to this peer, and their cancels. */
  requests: { from: string; seq: number; requestId: number; deadlineMs: number; at: number }[];
  cancels: { from: string; requestId: number; at: number }[];
  /** Segments put in the store whose bytes did not match the origin's (must stay empty). */
  badStores: string[];
}

export interface World {
  clock: ManualClock;
  sim: Sim;
  net: MemoryNetwork;
  origin: FakeOrigin;
  tracker: FakeTracker;
  peers: Peer[];
  raws: RawPeer[];
}

export function world(
  t: TestContext,
  opts: {
    origin?: Partial<FakeOriginOptions>;
    tracker?: Partial<FakeTrackerOptions>;
    net?: Partial<MemoryNetworkConfig>;
    segments?: number;
  } = {},
): World {
  const clock = new ManualClock();
  const origin = new FakeOrigin(clock, opts.origin);
  origin.publishMany(opts.segments ?? 4);
  const w: World = {
    clock,
    sim: new Sim(clock),
    net: new MemoryNetwork(clock, opts.net),
    origin,
    tracker: new FakeTracker(clock, origin.channelInfo(), opts.tracker),
    peers: [],
    raws: [],
  };
  t.after(() => {
    for (const p of w.peers) p.engine.destroy();
    origin.close();
  });
  return w;
}

export type PeerOpts = Partial<Omit<EngineOptions, 'channel'>> & {
  capacityBytes?: number;
  tracker?: boolean;
  random?: () => number;
  natProber?: NatProber;
};

/** Creates a peer (not started). */
export function makePeer(w: World, name: string, opts: PeerOpts = {}): Peer {
  const { capacityBytes, tracker = true, random, natProber, ...engineOpts } = opts;
  const id = pid(name);
  const store = new MemorySegmentStore(capacityBytes ? { capacityBytes } : {});
  const conn = tracker ? w.tracker.connect({ peerId: id }) : undefined;
  const engine = new PeerEngine(
    { channel: w.origin.opts.channel, originUrl: w.origin.opts.originUrl, ...engineOpts },
    {
      clock: w.clock,
      transport: w.net.transport(id),
      http: w.origin,
      tracker: conn,
      store,
      ...(random && { random }),
      ...(natProber && { natProber }),
    },
  );
  const p: Peer = {
    id,
    engine,
    store,
    conn,
    loaded: [],
    rejected: [],
    closed: [],
    connected: [],
    errors: [],
    requests: [],
    cancels: [],
    badStores: [],
  };
  engine.on('segment-loaded', (e) => p.loaded.push({ ...e, at: w.clock.now() }));
  engine.on('segment-rejected', (e) => p.rejected.push(e));
  engine.on('peer-closed', (e) => p.closed.push(e));
  engine.on('error', (e) => p.errors.push(e));
  engine.on('peer-connected', ({ id: remote }) => {
    p.connected.push(remote);
    const n = engine.neighbours.get(remote);
    n?.on('request', (r) =>
      p.requests.push({
        from: remote,
        seq: r.mediaSequence,
        requestId: r.requestId,
        deadlineMs: r.deadlineMs,
        at: w.clock.now(),
      }),
    );
    n?.on('cancel', (requestId) => p.cancels.push({ from: remote, requestId, at: w.clock.now() }));
  });
  store.on('added', ({ rendition, seqs }) => {
    for (const seq of seqs) {
      const got = store.get(rendition, seq)!;
      if (sha(got.bytes) !== w.origin.segment(rendition, seq).attestation.sha256)
        p.badStores.push(`${rendition}/${seq}`);
    }
  });
  w.peers.push(p);
  return p;
}

/** Creates and starts a peer (resolves once it is ready). */
export async function addPeer(w: World, name: string, opts: PeerOpts = {}): Promise<Peer> {
  const p = makePeer(w, name, opts);
  await w.sim.resolve(p.engine.start(), 10_000, `${name} start`);
  return p;
}

export function neighbour(a: Peer, b: { id: string }): Neighbour | undefined {
  return a.engine.neighbours.get(b.id);
}

export async function linked(w: World, a: Peer, b: Peer): Promise<void> {
  await w.sim.until(
    () => !!neighbour(a, b)?.open && !!neighbour(b, a)?.open,
    15_000,
    `${a.id} ↔ ${b.id} link`,
  );
}

/** Puts verified segments of the origin in a peer's store (as if it had fetched them). */
export function give(w: World, p: Peer, ...seqs: number[]): void {
  for (const seq of seqs) {
    const { bytes, attestation } = w.origin.segment(R, seq);
    p.store.put(R, seq, bytes, attestation);
  }
}

export function push(w: World, atts: Attestation[]): void {
  for (const a of atts) w.tracker.pushAttestation(a);
}

export interface Demand {
  seq: number;
  deadlineAt: number;
  result?: LoadResult;
  at?: number;
  error?: Error;
}

/** `load()` due `inMs` from now, recording when it resolves. */
export function demand(w: World, p: Peer, seq: number, inMs: number): Demand {
  const d: Demand = { seq, deadlineAt: w.clock.now() + inMs };
  p.engine.load(R, seq, d.deadlineAt).then(
    (r) => {
      d.result = r;
      d.at = w.clock.now();
    },
    (e: Error) => (d.error = e),
  );
  return d;
}

export async function settled(w: World, d: Demand, maxMs = 30_000): Promise<LoadResult> {
  await w.sim.until(() => d.result !== undefined || d.error !== undefined, maxMs, `load of ${d.seq}`);
  if (d.error) throw d.error;
  return d.result!;
}

export function assertVerified(w: World, d: Demand): void {
  assert.ok(d.result, `segment ${d.seq} loaded`);
  assert.equal(sha(d.result.bytes), w.origin.segment(R, d.seq).attestation.sha256, 'verified bytes');
}

/** A hand-driven peer (joined to the fake tracker by the caller). */
export function rawPeer(w: World, name: string, opts: Partial<RawPeerOptions> = {}): RawPeer {
  const raw = new RawPeer({
    network: w.net,
    tracker: w.tracker,
    peerId: pid(name),
    channel: w.origin.opts.channel,
    ...opts,
  });
  w.raws.push(raw);
  return raw;
}

/** A raw peer joined and introduced to `to`, its link open both ways. */
export async function rawNeighbour(
  w: World,
  name: string,
  to: Peer,
  opts: Partial<RawPeerOptions> = {},
): Promise<RawPeer> {
  const raw = rawPeer(w, name, opts);
  await w.sim.resolve(raw.join(), 1000);
  w.tracker.introduce(to.id, raw.id);
  await w.sim.until(() => !!neighbour(to, raw)?.open && raw.connected(to.id), 5000, `${name} link`);
  return raw;
}

export const request = (requestId: number, seq: number, deadlineMs: number, rendition = R): WireMessage => ({
  type: 'request',
  requestId,
  rendition,
  mediaSequence: seq,
  deadlineMs,
});

/** Payload bytes of the `data` messages `raw` got from `from`. */
export const dataBytes = (raw: RawPeer, from: string): number =>
  raw.received(from, 'data').reduce((n, d) => n + d.bytes.byteLength, 0);

/** Ranges a neighbour's announcements hold in memory (all renditions). */
export function heldRanges(n: Neighbour | undefined): { renditions: number; ranges: number } {
  if (!n) return { renditions: 0, ranges: 0 };
  let ranges = 0;
  for (const set of n.holds.values()) ranges += set.rangeCount;
  return { renditions: n.holds.size, ranges };
}
