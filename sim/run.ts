/**
 * One simulation: the scenario's viewers as real engines (`PeerEngine` + `HeadlessPlayer`) on the
 * simulated network, origin, source and in-process tracker, on one virtual clock; it schedules joins
 * and leaves, samples the figures every simulated second and returns the records the report is made of.
 */
import { HeadlessPlayer, MemoryNetwork, PeerEngine, type PeerLink, type Transport } from '../peer/index.ts';
import { originPaths, segmentKey, type ChannelInfo } from '../protocol/index.ts';
import { peakBandwidthBps } from '../source/index.ts';
import { scaleBytes, scaledEngineBytes, scaledStoreBytes } from './byte-scale.ts';
import { simIntegrity } from './integrity.ts';
import { VirtualTime } from './loop.ts';
import { DEFAULT_SIM_ORIGIN, SimOrigin } from './origin.ts';
import type { SegmentSpread, SimResult, SimTick, ViewerRecord } from './report.ts';
import { Rng } from './rng.ts';
import { sample, sampleNat, type Scenario } from './scenario.ts';
import { SimSource } from './source.ts';
import { SharedPayloadStore } from './shared-store.ts';
import { SimTracker } from './tracker.ts';

export interface SimOptions {
  /** Payload bytes (and every capacity) scaled by this factor, for speed (1: real sizes). */
  byteScale: number;
  /** Called about every simulated second. */
  progress?: (p: { atS: number; viewers: number; offload: number; stalls: number; events: number }) => void;
  /** Things that happen to the world at given simulated times (tests: partitions, cuts). */
  events?: { atS: number; run: (world: SimWorld) => void }[];
  /** False: the engines relay no segment before they hold it (store and forward). */
  relay?: boolean;
  /**
   * Viewers start this many segments behind the newest (the player's default: 1). Latency behind the
   * newest segment is then about this many segment durations plus one.
   */
  startBehindSegments?: number;
}

/** What scripted events may act on. */
export interface SimWorld {
  network: MemoryNetwork;
  /** Peer ids of the viewers present and joined, in joining order. */
  peerIds(): string[];
}

export const DEFAULT_SIM: SimOptions = { byteScale: 1 };

const CHANNEL = 'sim';
/** The stream runs this many segments before the first viewer arrives (the bench waits for it too). */
const WARMUP_SEGMENTS = 3;
const ORIGIN_URL = 'http://origin.sim';
/** A segment's spread is judged over the viewers present when it was published and this long after. */
const SPREAD_WINDOW_MS = 30_000;

interface Viewer {
  record: ViewerRecord;
  engine: PeerEngine;
  player: HeadlessPlayer;
}

/** kbit/s → bytes/s at the payload scale (Infinity stays). */
const bytesPerS = (kbps: number, scale: number) =>
  Number.isFinite(kbps) ? (kbps * 1000 * scale) / 8 : Infinity;

export async function simulate(scenario: Scenario, options: Partial<SimOptions> = {}): Promise<SimResult> {
  const o = { ...DEFAULT_SIM, ...options };
  const s = scenario;
  const wall0 = performance.now();
  const time = new VirtualTime();
  const { clock } = time;
  const t0 = WARMUP_SEGMENTS * s.segmentDurationS * 1000;
  const engineBytes = scaledEngineBytes(o.byteScale);
  const rng = new Rng(s.seed);
  const rngs = {
    place: rng.fork('place'),
    capacity: rng.fork('capacity'),
    nat: rng.fork('nat'),
    churn: rng.fork('churn'),
    jitter: rng.fork('jitter'),
    sampling: rng.fork('sampling'),
    seeks: rng.fork('seeks'),
  };

  // ---- the world ------------------------------------------------------------------------------
  const source = new SimSource(clock, rng, {
    channel: CHANNEL,
    ladder: s.ladder,
    segmentDurationS: s.segmentDurationS,
    playlistWindow: s.windowSegments,
    byteScale: o.byteScale,
  });
  const origin = new SimOrigin(
    clock,
    {
      originUrl: ORIGIN_URL,
      latencyMs: s.origin.latencyMs,
      latencyJitterMs: s.origin.latencyJitterMs,
      egressBytesPerS: bytesPerS(s.origin.egressKbps, o.byteScale),
      // Progress in as many chunks as at full size.
      chunkBytes: scaleBytes(DEFAULT_SIM_ORIGIN.chunkBytes, o.byteScale),
    },
    rng.fork('origin'),
  );
  origin.addChannel(source);
  const tracker = new SimTracker(
    { policy: s.policy, processingDelayMs: s.tracker.processingMs },
    { clock, rng, channelInfo: (id) => (id === CHANNEL ? channelInfo(source, live.size) : undefined) },
  );
  // Peers on a plane: one-way latency proportional to their distance (span edge to edge).
  const positions = new Map<string, [number, number]>();
  const place = (id: string): [number, number] => {
    let p = positions.get(id);
    if (!p) positions.set(id, (p = [rngs.place.next(), rngs.place.next()]));
    return p;
  };
  const network = new MemoryNetwork(clock, {
    latencyMs: 0,
    latencyModel: (a, b) => {
      const [ax, ay] = place(a);
      const [bx, by] = place(b);
      return (Math.hypot(ax - bx, ay - by) / Math.SQRT2) * s.latencySpanMs;
    },
    jitterMs: s.jitterMs,
    random: () => rngs.jitter.next(),
    handshakeMs: s.handshakeMs,
  });
  if (s.turn)
    network.addTurnRelay({
      id: 'turn',
      uploadBytesPerS: bytesPerS(s.turn.uploadKbps, o.byteScale),
      latencyMs: s.turn.latencyMs,
    });
  const streamBytes: Record<string, number> = {};
  // The source registers its channel once it is live (as the real one does), then viewers arrive.
  let registered = false;
  source.on('published', (records) => {
    if (!registered) {
      registered = true;
      void tracker.registerChannel(channelInfo(source, 0));
    }
    for (const att of records) {
      streamBytes[att.rendition] = (streamBytes[att.rendition] ?? 0) + att.byteLength;
      tracker.pushAttestation(att);
    }
  });

  // ---- viewers --------------------------------------------------------------------------------
  const live = new Set<Viewer>();
  const records: ViewerRecord[] = [];
  const byPeerId = new Map<string, Viewer>();
  let nextIndex = 0;
  const latencyS: number[] = [];
  const httpSegmentMs: number[] = [];
  const p2pSegmentMs: number[] = [];
  const depths: number[] = [];
  /** segment key → peer id → depth (recent segments only). */
  const depthOf = new Map<string, Map<string, number>>();
  /** segment key → when each viewer (index) got it. */
  const arrivals = new Map<string, Map<number, number>>();
  const spreads: SegmentSpread[] = [];

  const spawn = (): Viewer => {
    const index = nextIndex++;
    const engineRng = rng.fork(`engine-${index}`);
    const natType = sampleNat(s.natMix, rngs.nat);
    const uploadKbps = sample(s.uploadKbps, rngs.capacity);
    const downloadKbps = sample(s.downloadKbps, rngs.capacity);
    const record: ViewerRecord = {
      index,
      peerId: '',
      joinedAtMs: clock.now(),
      leftAtMs: null,
      rendition: s.rendition === 'auto' ? '' : s.rendition,
      firstTier: false,
      natType,
      uploadKbps,
      startupMs: null,
      joinMs: null,
      stalls: 0,
      stallMs: 0,
      segmentsPlayed: 0,
      segmentsOnTime: 0,
      seeks: 0,
      seekWaitMs: 0,
      httpBytes: 0,
      p2pBytes: 0,
      uploadedBytes: 0,
    };
    records.push(record);
    const configured = new Set<string>();
    // The engine learns its id from the tracker; its end of the network is set up on its first link.
    const transport: Transport = {
      createLink(opts): PeerLink {
        if (!configured.has(opts.localId)) {
          configured.add(opts.localId);
          network.setUploadBandwidth(opts.localId, bytesPerS(uploadKbps, o.byteScale));
          network.setDownloadBandwidth(opts.localId, bytesPerS(downloadKbps, o.byteScale));
          network.setNatType(opts.localId, natType);
        }
        return network.transport(opts.localId).createLink(opts);
      },
    };
    const engine = new PeerEngine(
      {
        channel: CHANNEL,
        rendition: s.rendition,
        kind: 'node',
        mode: 'viewer',
        natType,
        originUrl: ORIGIN_URL,
        ...(Number.isFinite(uploadKbps) && {
          declaredUploadKbps: scaleBytes(uploadKbps, o.byteScale),
        }),
        ...engineBytes,
        ...(o.relay === false && { relay: false }),
      },
      {
        clock,
        transport,
        http: origin,
        tracker: tracker.connect({ ip: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}` }),
        store: new SharedPayloadStore(source, { capacityBytes: scaledStoreBytes(o.byteScale) }),
        random: () => engineRng.next(),
        integrity: simIntegrity,
      },
    );
    const player = new HeadlessPlayer(engine, {
      abr: s.rendition === 'auto',
      ...(o.startBehindSegments !== undefined && { startBehindSegments: o.startBehindSegments }),
    });
    const v: Viewer = { record, engine, player };
    live.add(v);
    player.on('playing', ({ startupMs }) => {
      record.startupMs ??= startupMs;
      if (s.seeks.perMinute > 0) scheduleSeek(v);
    });
    engine.on('joined', ({ peerId }) => {
      record.peerId = peerId;
      byPeerId.set(peerId, v);
    });
    engine.on('segment-loaded', ({ rendition, mediaSequence, source: via, from, ms }) => {
      (via === 'p2p' ? p2pSegmentMs : httpSegmentMs).push(ms);
      const key = segmentKey({ channel: CHANNEL, rendition, mediaSequence });
      let d = 1;
      if (via === 'p2p' && from) d = (depthOf.get(key)?.get(from) ?? 0) + 1;
      let m = depthOf.get(key);
      if (!m) depthOf.set(key, (m = new Map()));
      if (engine.peerId) m.set(engine.peerId, d);
      depths.push(d);
      arrivals.get(key)?.set(index, clock.now());
    });
    engine.start().then(
      () => (record.joinMs = clock.now() - record.joinedAtMs),
      () => {
        // Counted: a viewer that never starts shows as startupMs null in the report.
      },
    );
    return v;
  };

  /** The viewer's next seek: back into the window from the live edge, or back to the edge. */
  const scheduleSeek = (v: Viewer): void => {
    clock.setTimeout(
      () => {
        if (!live.has(v)) return;
        const { engine, player } = v;
        const listed = [...engine.known.keys()];
        const oldest = Math.min(...listed);
        const edge = engine.newestPublished - player.opts.startBehindSegments;
        const cur = player.currentSequence ?? edge;
        const target =
          cur < edge - 1
            ? Math.min(edge, Math.max(...listed))
            : Math.max(oldest, cur - 1 - rngs.seeks.int(s.seeks.maxBackSegments));
        player.seek(target);
        scheduleSeek(v);
      },
      rngs.seeks.exponential(60 / s.seeks.perMinute) * 1000,
    );
  };

  const leave = (v: Viewer): void => {
    snapshot(v);
    v.record.leftAtMs = clock.now();
    live.delete(v);
    byPeerId.delete(v.record.peerId);
    v.player.destroy();
    v.engine.destroy();
  };

  const snapshot = (v: Viewer): void => {
    const { record: r, engine, player } = v;
    r.firstTier = engine.firstTier;
    r.rendition = engine.rendition || r.rendition;
    r.stalls = player.stalls;
    r.stallMs = player.stallMs;
    r.segmentsPlayed = player.segmentsPlayed;
    r.segmentsOnTime = player.segmentsOnTime;
    r.seeks = player.seeks;
    r.seekWaitMs = player.seekWaitMs;
    r.httpBytes = engine.httpBytes;
    r.p2pBytes = engine.p2pBytes;
    r.uploadedBytes = engine.uploads.uploadedBytes;
  };

  // ---- spread of each segment -----------------------------------------------------------------
  source.on('published', (records) => {
    for (const att of records) spreadOf(att.rendition, att.mediaSequence, clock.now());
  });
  function spreadOf(rendition: string, mediaSequence: number, publishedAtMs: number): void {
    const key = segmentKey({ channel: CHANNEL, rendition, mediaSequence });
    const present = [...live].filter((v) => (v.engine.rendition || v.record.rendition) === rendition);
    arrivals.set(key, new Map());
    clock.setTimeout(() => {
      const got = arrivals.get(key)!;
      arrivals.delete(key);
      const audience = present.filter((v) => live.has(v));
      const reachMs = audience
        .flatMap((v) => {
          const at = got.get(v.record.index);
          return at === undefined ? [] : [at - publishedAtMs];
        })
        .sort((a, b) => a - b);
      spreads.push({ rendition, mediaSequence, publishedAtMs, audience: audience.length, reachMs });
      // Depths of segments this old are not needed any more.
      depthOf.delete(key);
    }, SPREAD_WINDOW_MS);
  }

  // ---- arrivals and departures ----------------------------------------------------------------
  const joinAt = (i: number) => t0 + (s.joinOverS * 1000 * i) / s.peers;
  if (s.churn.kind !== 'sessions') for (let i = 0; i < s.peers; i++) clock.setTimeout(spawn, joinAt(i));
  if (s.churn.kind === 'replace') {
    const { intervalS, fraction } = s.churn;
    const churn = (): void => {
      if (clock.now() < t0 + (s.durationS - 10) * 1000) {
        const all = [...live];
        const n = Math.round(all.length * fraction);
        for (let i = 0; i < n && all.length > 0; i++) leave(all.splice(rngs.churn.int(all.length), 1)[0]!);
        for (let i = 0; i < n; i++) clock.setTimeout(spawn, 200 * i);
      }
      clock.setTimeout(churn, intervalS * 1000);
    };
    clock.setTimeout(churn, t0 + intervalS * 1000);
  } else if (s.churn.kind === 'sessions') {
    const { sessionS, gapS } = s.churn;
    // Each viewer leaves after its session; another arrives after a gap (the audience stays about the same).
    const spawnWithSession = (): void => {
      const v = spawn();
      clock.setTimeout(
        () => {
          if (!live.has(v)) return;
          leave(v);
          clock.setTimeout(spawnWithSession, sample(gapS, rngs.churn) * 1000);
        },
        sample(sessionS, rngs.churn) * 1000,
      );
    };
    for (let i = 0; i < s.peers; i++) clock.setTimeout(spawnWithSession, joinAt(i));
  }

  // ---- sampling -------------------------------------------------------------------------------
  const ticks: SimTick[] = [];
  /** Simulated seconds since the first viewer could arrive (figures are over this phase). */
  const atS = () => Math.round((clock.now() - t0) / 1000);
  const sampleTick = (): void => {
    let consumed = 0;
    let p2p = 0;
    let uploaded = 0;
    let stalls = 0;
    for (const r of records) {
      if (r.leftAtMs !== null) {
        consumed += r.httpBytes + r.p2pBytes;
        p2p += r.p2pBytes;
        uploaded += r.uploadedBytes;
        stalls += r.stalls;
      }
    }
    for (const v of live) {
      consumed += v.engine.httpBytes + v.engine.p2pBytes;
      p2p += v.engine.p2pBytes;
      uploaded += v.engine.uploads.uploadedBytes;
      stalls += v.player.stalls;
    }
    const originSegmentBytes = origin.counters()[CHANNEL]?.segment.bytes ?? 0;
    const tick: SimTick = {
      atS: atS(),
      viewers: live.size,
      originSegmentBytes,
      consumedBytes: consumed,
      p2pBytes: p2p,
      uploadedBytes: uploaded,
      stalls,
    };
    ticks.push(tick);
    o.progress?.({
      atS: tick.atS,
      viewers: live.size,
      offload: consumed > 0 ? 1 - originSegmentBytes / consumed : NaN,
      stalls,
      events: time.events,
    });
    clock.setTimeout(sampleTick, 1000);
    // Latency once in each second, at a random instant: sampling in step with the source (both on
    // whole seconds) would always see the same point of the sawtooth between two segments.
    clock.setTimeout(sampleLatency, rngs.sampling.next() * 1000);
  };
  const sampleLatency = (): void => {
    for (const v of live) {
      const l = v.player.latencyS;
      if (l !== undefined && v.player.state === 'playing') latencyS.push(l);
    }
  };
  clock.setTimeout(sampleTick, t0 + 1000);

  const world: SimWorld = {
    network,
    peerIds: () => [...live].map((v) => v.record.peerId).filter(Boolean),
  };
  for (const e of o.events ?? []) clock.setTimeout(() => e.run(world), t0 + e.atS * 1000);

  source.start();
  await time.runUntil(t0 + s.durationS * 1000);

  // ---- the end --------------------------------------------------------------------------------
  for (const v of live) snapshot(v);
  const result: SimResult = {
    scenario: s,
    viewers: records,
    ticks,
    latencyS,
    httpSegmentMs,
    p2pSegmentMs,
    depths,
    spreads,
    tracker: tracker.rounds().map((t) => ({
      atS: Math.round((t.atMs - t0) / 1000),
      requests:
        t.joins +
        t.joinsRefused +
        t.reports +
        t.reportsRefused +
        t.signals +
        t.signalsRefused +
        t.complaints +
        t.leaves,
      pushes: t.neighbourPushes + t.signalPushes + t.attestationPushes + t.channelPushes,
    })),
    originSegmentBytes: origin.counters()[CHANNEL]?.segment.bytes ?? 0,
    streamBytes,
    network: network.totals(),
    run: {
      wallS: (performance.now() - wall0) / 1000,
      // The kernel's count (what `/usr/bin/time` reports): the process's peak so far, in KiB.
      rssMaxBytes: process.resourceUsage().maxRSS * 1024,
      events: time.events,
      byteScale: o.byteScale,
      ...(o.startBehindSegments !== undefined && { startBehindSegments: o.startBehindSegments }),
      ...(o.relay === false && { relay: false }),
    },
  };
  for (const v of [...live]) {
    v.player.destroy();
    v.engine.destroy();
  }
  live.clear();
  source.destroy();
  origin.destroy();
  tracker.destroy();
  return result;
}

/** The directory entry of the simulated channel, as the tracker hands it to a joining peer. */
function channelInfo(source: SimSource, viewers: number): ChannelInfo {
  return {
    id: source.channel,
    title: source.opts.title,
    status: source.status,
    originUrl: ORIGIN_URL,
    publicKey: source.publicKey,
    segmentDurationS: source.opts.segmentDurationS,
    renditions: source.ladder.map((r) => ({
      name: r.name,
      width: r.width,
      height: r.height,
      bandwidthBps: scaleBytes(peakBandwidthBps(r, source.opts.hasAudio), source.opts.byteScale),
    })),
    livePlaylist: source.status === 'idle' ? null : originPaths.liveMaster(source.channel),
    recordings: [],
    viewers,
    offload: null,
  };
}
