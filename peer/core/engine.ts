/**
 * The P2P engine, a facade: it wires the tracker session (tracker-session.ts), the links to
 * neighbours (links.ts), the playlist follower (playlist-follower.ts), the attestation cache
 * (attestations.ts), the demands (demands.ts), the transfers (transfers.ts: fetch, verify, hold,
 * deliver) and the scheduler (scheduler.ts, a pure decision step); it performs what the scheduler
 * decides and owns `destroy()`. It serves `load()` demands deadline-aware: P2P when a neighbour holds
 * the segment and can deliver it in time with a safety margin, HTTP from the origin otherwise,
 * switching a slow or silent P2P transfer to HTTP in time. Every byte is verified against the
 * channel's signed attestation before it is stored, played or uploaded.
 *
 * Isomorphic: time, network, HTTP and the tracker session are injected (see seams.ts).
 */
import {
  atOrigin,
  attestationUrlOf,
  originPaths,
  segmentKey,
  TypedEmitter,
  type Attestation,
  type ChannelInfo,
  type IceServer,
  type NatType,
  type PeerReport,
} from '../../protocol/index.ts';
import { AttestationCache } from './attestations.ts';
import { budgetOptions, type StreamLadder } from './budget.ts';
import { RateMeter, type Ewma } from './estimators.ts';
import { webCryptoIntegrity } from './integrity.ts';
import { loadOriginChannel } from './origin-channel.ts';
import { Demands } from './demands.ts';
import { Links } from './links.ts';
import { peerLogs, type Log, type LogComponent } from './log.ts';
import type { Neighbour } from './neighbour.ts';
import { PlaylistFollower, type KnownSegment } from './playlist-follower.ts';
import { schedule, type SchedulerAction, type SchedulerInput } from './scheduler.ts';
import { NeighbourViews } from './scheduler-views.ts';
import { toRanges } from './segment-store.ts';
import type { Clock, TimerHandle, TrackerConnection } from './seams.ts';
import { TrackerSession } from './tracker-session.ts';
import { Transfers, type Delivery } from './transfers.ts';
import { UploadManager } from './upload.ts';

export type { KnownSegment } from './playlist-follower.ts';
export * from './engine-options.ts';
import {
  checkOptions,
  DEFAULT_ENGINE,
  EngineError,
  type EngineDeps,
  type EngineEvents,
  type EngineOptions,
  type LoadResult,
  type Variant,
} from './engine-options.ts';

/** Top bitrate and segment duration assumed until the channel's ladder is known. */
const FALLBACK_TOP_BITRATE_BPS = 8_000_000;
/** Segments fetched by the player before the engine was ready, kept for verification at most. */
const MAX_ADOPTED_BEFORE_READY = 4;
const FALLBACK_SEGMENT_DURATION_S = 2;

export class PeerEngine extends TypedEmitter<EngineEvents> {
  readonly opts: EngineOptions;
  readonly #deps: EngineDeps;
  peerId = '';
  firstTier = false;
  channelInfo: ChannelInfo | undefined;
  originUrl = '';
  variants: Variant[] = [];
  rendition = '';
  iceServers: IceServer[] = [];
  /** As declared (`natType` option), or learned after joining (`natProber`). */
  natType: NatType;
  #natProbing = false;
  readonly uploads: UploadManager;
  httpBytes = 0;
  p2pBytes = 0;
  readonly receivedFrom: Record<string, number> = {};
  readonly downloadRate = new RateMeter(5000);
  readonly ladder: StreamLadder;
  readonly #links: Links;
  readonly #playlist: PlaylistFollower;
  readonly #attestations: AttestationCache;
  readonly #session: TrackerSession | undefined;
  readonly #demands: Demands;
  readonly #transfers: Transfers;
  /** Rendition names of the ladder (master playlist and tracker's channel info). */
  readonly #ladderNames = new Set<string>();
  #variantUrls = new Map<string, string>();
  #tickTimer: TimerHandle | undefined;
  /** When the pending round runs (engine clock ms). */
  #tickDueAt = Infinity;
  /** The scheduler's input, reused from round to round. */
  #input: SchedulerInput | undefined;
  /** The tracker's ranked suppliers (id → rank, 0 first): asked before other holders. */
  readonly #supplierRanks = new Map<string, number>();
  readonly #neighbourViews = new NeighbourViews(this.receivedFrom, this.#supplierRanks, (r, seq) =>
    this.uploads.sending(r, seq),
  );
  #playbackProbe: () => { bufferS: number; stalls: number } = () => ({ bufferS: 0, stalls: 0 });
  #ready = false;
  /** The player said which rendition it plays (see `followPlayerRendition`). */
  #renditionSet = false;
  readonly #adopted = new Map<string, { rendition: string; mediaSequence: number; bytes: Uint8Array }>();
  #destroyed = false;
  readonly #unsubscribe: (() => void)[] = [];
  /** Debug logs per component of this peer: `peertv:peer:<id>:<component>`. */
  readonly #logs: (component: LogComponent) => Log = peerLogs(() => this.peerId);
  readonly #log = {
    scheduler: this.#logs('scheduler'),
    transfers: this.#logs('transfers'),
    links: this.#logs('links'),
    tracker: this.#logs('tracker'),
    playlist: this.#logs('playlist'),
    attestations: this.#logs('attestations'),
  };

  constructor(opts: Partial<EngineOptions> & Pick<EngineOptions, 'channel'>, deps: EngineDeps) {
    super();
    this.opts = { ...DEFAULT_ENGINE, ...opts };
    checkOptions(this.opts);
    this.natType = this.opts.natType;
    this.#demands = new Demands(this.opts.channel);
    this.#deps = deps;
    const o = this.opts;
    this.ladder = {
      has: (r) => (this.#ladderNames.size > 0 ? this.#ladderNames.has(r) : undefined),
      topBitrateBps: () => {
        let top = 0;
        for (const v of this.variants) top = Math.max(top, v.bandwidthBps);
        for (const r of this.channelInfo?.renditions ?? []) top = Math.max(top, r.bandwidthBps);
        return top > 0 ? top : FALLBACK_TOP_BITRATE_BPS;
      },
      segmentDurationS: () => this.channelInfo?.segmentDurationS ?? FALLBACK_SEGMENT_DURATION_S,
    };
    this.uploads = new UploadManager(
      deps.clock,
      {
        has: (r, seq) => deps.store.has(r, seq),
        acquire: (r, seq) => {
          const got = deps.store.get(r, seq);
          if (!got) return undefined;
          deps.store.pin(r, seq);
          return got.bytes;
        },
        release: (r, seq) => deps.store.unpin(r, seq),
        feed: (r, seq) => this.#transfers.feed(r, seq),
      },
      { ...o.upload, capKbps: o.uploadCapKbps },
      this.ladder,
    );
    const integrity = deps.integrity ?? webCryptoIntegrity;
    this.#attestations = new AttestationCache(o.channel, {
      integrity,
      getJson: (url) => this.#getJson(url),
      recordUrl: (rendition, seq) => attestationUrlOf(this.#segmentUrl(rendition, seq)),
      rejected: (info) => {
        this.#log.attestations('rejected %s/%d: %s', info.rendition, info.mediaSequence, info.reason);
        this.emit('segment-rejected', info);
      },
    });
    this.#transfers = new Transfers({
      clock: deps.clock,
      http: deps.http,
      store: deps.store,
      attestations: this.#attestations,
      integrity,
      channel: o.channel,
      minThroughputSampleBytes: o.minThroughputSampleBytes,
      priorHttpBps: o.priorHttpBps,
      hold: {
        maxEntries: o.unverifiedHoldSegments,
        maxHoldMs: o.unverifiedHoldMs,
        retryMs: o.attestationRetryMs,
        retryMaxMs: o.attestationRetryMaxMs,
      },
      segmentUrl: (rendition, seq) => this.#segmentUrl(rendition, seq),
      delivered: (d) => this.#delivered(d),
      started: (rendition, seq) => this.#announceReceiving(rendition, seq),
      rejected: (info) => {
        this.#log.transfers(
          'rejected %s/%d from %s: %s',
          info.rendition,
          info.mediaSequence,
          info.from ?? 'origin',
          info.reason,
        );
        this.emit('segment-rejected', info);
      },
      failed: (message) => {
        this.#log.transfers('origin failed: %s', message);
        this.emit('error', { code: 'origin-unavailable', message });
      },
      wake: (delayMs) =>
        delayMs === 0
          ? this.#scheduleTick(0)
          : void this.#deps.clock.setTimeout(() => this.#scheduleTick(0), delayMs),
    });
    this.#playlist = new PlaylistFollower(o.keepSegments, {
      clock: deps.clock,
      getText: (url) => this.#getText(url),
      updated: (u) => {
        if (u.windowStart !== undefined) this.#attestations.pruneBefore(u.windowStart);
        deps.store.setWindow(u.rendition, Math.max(0, u.newest - o.keepSegments));
        this.#log.playlist('%s: %d..%d%s', u.rendition, u.oldest, u.newest, u.ended ? ' (ended)' : '');
        this.emit('playlist', { newest: u.newest, oldest: u.oldest, ended: u.ended });
        this.#scheduleTick(0);
      },
      failed: (message) => {
        this.#log.playlist('failed: %s', message);
        if (!this.#destroyed) this.emit('error', { code: 'origin-unavailable', message });
      },
    });
    this.#links = new Links(o, {
      clock: deps.clock,
      transport: deps.transport,
      tracker: deps.tracker,
      uploads: this.uploads,
      ladder: this.ladder,
      budget: budgetOptions(o.budget),
      peerId: () => this.peerId,
      iceServers: () => this.iceServers,
      heldRanges: () => ({ rendition: this.rendition, ranges: deps.store.heldRanges(this.rendition) }),
      wantsRoutes: () => this.listenerCount('peer-route') > 0,
      log: this.#log.links,
      connected: (info) => {
        this.#log.links('connected to %s in %d ms', info.id, info.connectMs);
        this.emit('peer-connected', info);
      },
      route: (info) => this.emit('peer-route', info),
      closed: (info) => {
        this.#log.links('closed %s: %s%s', info.id, info.reason, info.code ? ` (${info.code})` : '');
        this.emit('peer-closed', info);
      },
      firstBytes: (rendition, seq) => this.#announceReceiving(rendition, seq),
      // A neighbour's news (a `have`, a link closing) can only change a decision for a waiting demand.
      changed: () => {
        if (this.#demands.size > 0) this.#scheduleTick(0);
      },
    });
    this.#session = deps.tracker && this.#createSession(deps.tracker, deps.random ?? Math.random);
    const onAdded = ({ rendition, seqs }: { rendition: string; seqs: number[] }) => {
      const ranges = toRanges(seqs);
      for (const n of this.neighbours.values()) n.announce(rendition, ranges, false);
    };
    const onEvicted = ({ rendition, seqs }: { rendition: string; seqs: number[] }) => {
      const ranges = toRanges(seqs);
      for (const n of this.neighbours.values()) n.announceLost(rendition, ranges);
    };
    deps.store.on('added', onAdded);
    deps.store.on('evicted', onEvicted);
    this.#unsubscribe.push(
      () => deps.store.off('added', onAdded),
      () => deps.store.off('evicted', onEvicted),
    );
  }

  #createSession(tracker: TrackerConnection, random: () => number): TrackerSession {
    return new TrackerSession(this.opts, {
      clock: this.#deps.clock,
      tracker,
      random,
      natType: () => this.natType,
      wantedRendition: () =>
        this.opts.rendition === 'auto' ? this.rendition || undefined : this.opts.rendition,
      applyJoin: (ack) => {
        this.peerId = ack.peerId;
        this.iceServers = ack.iceServers;
        if (ack.natProbe) this.#probeNat(ack.natProbe);
        this.#setChannelInfo(ack.channel);
        this.rendition ||= ack.rendition;
        this.#setFirstTier(ack.firstTier);
        for (const id of ack.neighbours) this.#links.introduce(id);
      },
      joined: (peerId) => {
        this.#log.tracker('joined as %s (first tier: %s)', peerId, this.firstTier);
        this.emit('joined', { peerId });
      },
      report: () => this.#report(),
      failed: (message) => this.emit('error', { code: 'tracker-unreachable', message }),
      neighbours: (u) => {
        this.#log.tracker('neighbours +%d -%d, first tier: %s', u.add.length, u.remove.length, u.firstTier);
        this.#setFirstTier(u.firstTier);
        if (u.parents) {
          // The tracker plans who feeds whom: its plan spreads the load, not our turning requests away.
          this.uploads.planned = true;
          this.#supplierRanks.clear();
          u.parents.forEach((id, rank) => this.#supplierRanks.set(id, rank));
        }
        for (const id of u.add) this.#links.introduce(id);
        for (const id of u.remove) this.#links.unintroduce(id);
      },
      signal: (from, data) => this.#links.signal(from, data),
      attestation: (att) => this.#onAttestation(att),
      channel: (info) => this.#setChannelInfo(info),
    });
  }

  get clock(): Clock {
    return this.#deps.clock;
  }

  /** Segment download throughput over HTTP (bytes/s), as measured so far. */
  get httpThroughput(): Ewma {
    return this.#transfers.httpThroughput;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Links by peer id (open or still connecting). */
  get neighbours(): Map<string, Neighbour> {
    return this.#links.neighbours;
  }

  /** Known segments of the current rendition, by media sequence. */
  get known(): Map<number, KnownSegment> {
    return this.#playlist.known;
  }

  get newestPublished(): number {
    return this.#playlist.newestPublished;
  }

  get ended(): boolean {
    return this.#playlist.ended;
  }

  /** Lets the player report buffer and stalls to the tracker. */
  setPlaybackProbe(probe: () => { bufferS: number; stalls: number }): void {
    this.#playbackProbe = probe;
  }

  /** The one way segments are keyed in the engine's maps. */
  #keyOf(rendition: string, mediaSequence: number): string {
    return segmentKey({ channel: this.opts.channel, rendition, mediaSequence });
  }

  // ------------------------------------------------------------------ start-up

  /**
   * Joins the tracker (or goes HTTP-only), loads the channel key and the playlists. When the origin is
   * known up front (`originUrl`: the web player has it from the directory), nothing waits for the
   * tracker: the join runs beside the key and playlist fetches, and P2P takes over once it is in.
   */
  async start(): Promise<void> {
    const session = this.#session;
    let info: ChannelInfo | undefined;
    if (session && this.opts.p2p) {
      session.wire();
      const { epoch, outcome } = session.firstJoin();
      const joining = outcome.then((joined) => {
        if (this.#destroyed) throw new EngineError('destroyed', 'engine destroyed');
        if (joined.ok) return joined.info;
        // The tracker is up and says there is no such channel: final at start (the name is wrong),
        // thrown, or (playing from the origin meanwhile) said, and not retried.
        if (joined.code === 'unknown-channel') {
          const message = `channel ${this.opts.channel} not found on the tracker`;
          if (!this.opts.originUrl) throw new EngineError('unknown-channel', message);
          this.emit('error', { code: 'unknown-channel', message });
          return undefined;
        }
        this.emit('error', { code: 'tracker-unreachable', message: `${joined.code}: ${joined.message}` });
        // Not answering (yet): keep trying in the background while playing from the origin.
        if (session.transient(joined.code)) session.retryInBackground(epoch);
        return undefined;
      });
      if (this.opts.originUrl) joining.catch(() => {});
      else info = await joining;
    }
    this.originUrl = (info?.originUrl ?? this.opts.originUrl ?? '').replace(/\/+$/, '');
    if (!this.originUrl)
      throw new EngineError(
        'origin-unavailable',
        'no origin URL: the tracker is unreachable and none was given',
      );
    // The channel's public key comes from the origin, never from a peer (nor from the tracker).
    const channel = await loadOriginChannel(
      (url) => this.#getText(url),
      this.originUrl,
      this.opts.channel,
      this.opts.masterUrl,
    );
    await this.#attestations.setKey(channel.publicKey);
    for (const v of channel.variants) this.#ladderNames.add(v.name);
    this.variants = channel.variants;
    this.#variantUrls = new Map(channel.variants.map((v) => [v.name, v.url]));
    const wanted =
      this.opts.rendition === 'auto' ? this.rendition || this.variants[0]!.name : this.opts.rendition;
    const playlistUrl = this.#variantUrls.get(wanted);
    if (playlistUrl === undefined) throw new EngineError('playlist-invalid', `no rendition ${wanted}`);
    this.rendition = wanted;
    await this.#playlist.follow(wanted, playlistUrl);
    this.#ready = true;
    for (const a of this.#adopted.values()) this.#transfers.adopt(a.rendition, a.mediaSequence, a.bytes);
    this.#adopted.clear();
    this.#scheduleTick(0);
    this.emit('ready');
  }

  /** Channel key and first playlist known: `load()` is served (before, callers fetch themselves). */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * Bytes of a segment fetched from the origin by someone else (the player, before the engine was
   * ready): verified like any other (held until the key and attestation are known), then stored and
   * shared with neighbours, counted as HTTP bytes.
   */
  adopt(rendition: string, mediaSequence: number, bytes: Uint8Array): void {
    if (this.#destroyed || this.#deps.store.has(rendition, mediaSequence)) return;
    if (this.#transfers.has(rendition, mediaSequence)) return;
    if (this.#ready) return this.#transfers.adopt(rendition, mediaSequence, bytes);
    if (this.#adopted.size >= MAX_ADOPTED_BEFORE_READY) return;
    this.#adopted.set(this.#keyOf(rendition, mediaSequence), { rendition, mediaSequence, bytes });
  }

  #setChannelInfo(info: ChannelInfo): void {
    this.channelInfo = info;
    for (const r of info.renditions) this.#ladderNames.add(r.name);
  }

  #setFirstTier(v: boolean): void {
    if (this.firstTier === v) return;
    this.firstTier = v;
    this.emit('first-tier', v);
  }

  // ------------------------------------------------------------------ attestations

  /** A record pushed by the tracker: kept only once its signature checks out with the channel key. */
  #onAttestation(att: Attestation): void {
    void this.#attestations.push(att).then((kept) => {
      if (!kept || this.#destroyed) return;
      // Bytes that were waiting for this record can be checked now.
      this.#transfers.attestationKnown(att);
      if (att.rendition === this.rendition) {
        this.#playlist.notePublished(att.mediaSequence);
        // A first-tier peer fetches a fresh segment as soon as it is published.
        if (this.firstTier) this.#scheduleTick(0);
      }
    });
  }

  #segmentUrl(rendition: string, seq: number): string {
    const k = rendition === this.rendition ? this.known.get(seq) : undefined;
    return k?.url ?? atOrigin(this.originUrl, originPaths.segment(this.opts.channel, rendition, seq));
  }

  // ------------------------------------------------------------------ loading

  /**
   * Loads a segment (verified) by `deadlineAt` (engine clock ms). Resolves with its bytes and where
   * they came from; rejects only when even the origin cannot provide it.
   */
  load(rendition: string, mediaSequence: number, deadlineAt: number): Promise<LoadResult> {
    if (this.#destroyed) return Promise.reject(new EngineError('destroyed', 'engine destroyed'));
    const held = this.#deps.store.get(rendition, mediaSequence);
    if (held) return Promise.resolve({ bytes: held.bytes, source: 'cache', attestation: held.attestation });
    const p = this.#demands.want(rendition, mediaSequence, deadlineAt, this.#deps.clock.now());
    this.#scheduleTick(0);
    return p;
  }

  /** Switches the rendition this peer fetches and shares (new neighbours from the tracker). */
  setRendition(name: string): void {
    const playlistUrl = this.#variantUrls.get(name);
    if (playlistUrl === undefined) return;
    this.#renditionSet = true;
    if (name === this.rendition) return this.#scheduleTick(0);
    this.rendition = name;
    void this.#playlist.follow(name, playlistUrl);
    this.#session?.sendReport();
    this.emit('rendition-changed', name);
  }

  #scheduleTick(delayMs = this.opts.schedulerTickMs): void {
    if (this.#destroyed) return;
    if (this.#tickTimer !== undefined && (delayMs > 0 || this.#tickDueAt <= this.#deps.clock.now())) return;
    this.#deps.clock.clearTimeout(this.#tickTimer);
    this.#tickDueAt = this.#deps.clock.now() + delayMs;
    this.#tickTimer = this.#deps.clock.setTimeout(() => {
      this.#tickTimer = undefined;
      this.#tick();
      // Ticking on is needed only while a demand waits (deadlines and P2P progress are watched);
      // otherwise the events that can change a decision (a playlist, an attestation, a neighbour's
      // `have`, a link closing, a new demand) schedule the next round themselves.
      if (this.#demands.size > 0) this.#scheduleTick();
    }, delayMs);
  }

  /** One scheduling round: the scheduler decides, the engine performs. */
  #tick(): void {
    if (this.#destroyed || !this.#attestations.hasKey) return;
    const actions = schedule(this.#schedulerInput());
    for (const action of actions) this.#perform(action);
  }

  #schedulerInput(): SchedulerInput {
    const input = (this.#input ??= {
      now: 0,
      opts: this.opts,
      demands: [],
      neighbours: [],
      estimates: {
        expectedBytes: (r, s) => this.#expectedSize(r, s),
        httpEstimateMs: (bytes) => this.#transfers.httpEstimateMs(bytes),
        topBitrateBps: 0,
      },
      transfer: (r, s) => this.#transfers.view(r, s),
      unverified: (r, s) => this.#transfers.unverified(r, s),
      held: (r, s) => this.#deps.store.has(r, s),
      firstTier: {
        active: false,
        rendition: '',
        newestPublished: -1,
        renditionSet: false,
        isGap: (s) => this.known.get(s)?.gap ?? false,
      },
    });
    // The closures above are made once; what changes is set here each round.
    input.now = this.#deps.clock.now();
    input.demands = this.#demands.values();
    input.neighbours = this.#neighbourViews.of(this.neighbours);
    input.estimates.topBitrateBps = this.ladder.topBitrateBps();
    const ft = input.firstTier;
    ft.active = this.firstTier;
    ft.rendition = this.rendition;
    ft.newestPublished = this.newestPublished;
    ft.renditionSet = this.#renditionSet;
    return input;
  }

  #perform(action: SchedulerAction): void {
    const { rendition, mediaSequence: seq } = action;
    // No string is built here unless the namespace is enabled (this runs for every action).
    const detail = action.type === 'p2p' ? action.neighbourId : action.type === 'switch' ? action.why : '';
    this.#log.scheduler('%s %s/%d %s', action.type, rendition, seq, detail);
    switch (action.type) {
      case 'pull':
        return this.#transfers.startHttp(rendition, seq);
      case 'http': {
        const demand = this.#demands.get(rendition, seq);
        if (demand && action.waitedForP2p !== undefined) demand.waitedForP2p = action.waitedForP2p;
        return this.#transfers.startHttp(rendition, seq);
      }
      case 'p2p': {
        const n = this.neighbours.get(action.neighbourId);
        if (n) this.#transfers.startP2p(n, rendition, seq, action.deadlineAt);
        return;
      }
      case 'switch': {
        const { why } = action;
        const n = this.#transfers.switchToHttp(rendition, seq, why);
        if (!n) return;
        this.emit('p2p-late', { rendition, mediaSequence: seq, why, from: n.id });
        // Demoted for a while; a few failures in a row close the link (peer-unresponsive). A relay
        // that could not keep up is left alone for a while (neighbour.ts `relayFailed`).
        if (action.blame) n.failed(why);
        else if (action.relayed) n.relayFailed(why);
        return;
      }
    }
  }

  #expectedSize(rendition: string, seq: number): number {
    const att = this.#attestations.known(rendition, seq);
    if (att) return att.byteLength;
    const v = this.variants.find((x) => x.name === rendition);
    const dur = this.known.get(seq)?.durationS ?? this.channelInfo?.segmentDurationS ?? 2;
    return v ? (v.bandwidthBps / 8) * dur : 1_000_000;
  }

  /** A segment verified and stored: counted, announced, and handed to whoever waits for it. */
  #delivered(d: Delivery): void {
    const { rendition, mediaSequence: seq, via, bytes, from } = d;
    const now = this.#deps.clock.now();
    this.downloadRate.add(now, bytes.byteLength);
    if (via === 'http') this.httpBytes += bytes.byteLength;
    else {
      this.p2pBytes += bytes.byteLength;
      if (from) this.receivedFrom[from] = (this.receivedFrom[from] ?? 0) + bytes.byteLength;
    }
    const demand = this.#demands.get(rendition, seq);
    const late = demand !== undefined && now > demand.deadlineAt;
    this.emit('segment-loaded', {
      rendition,
      mediaSequence: seq,
      source: via,
      bytes: bytes.byteLength,
      ms: now - d.startedAt,
      late,
      ...(from && { from }),
    });
    if (late && (via === 'p2p' || demand.waitedForP2p))
      this.emit('p2p-late', {
        rendition,
        mediaSequence: seq,
        why: via === 'p2p' ? 'after deadline' : 'waited',
        ...(from && { from }),
      });
    if (demand) this.#demands.settle(demand, { bytes, source: via, attestation: d.attestation });
    // Relays of this segment send their last bytes now.
    this.uploads.onFeed();
  }

  /** Tells neighbours a segment is on its way to us: they may ask for it, we relay it as it arrives. */
  #announceReceiving(rendition: string, seq: number): void {
    if (!this.opts.relay) return;
    for (const n of this.neighbours.values()) n.announceReceiving(rendition, seq);
  }

  /** True when a verified segment is held (fetched and kept for neighbours). */
  hasSegment(rendition: string, mediaSequence: number): boolean {
    return this.#deps.store.has(rendition, mediaSequence);
  }

  /** Gives up a demand (the player moved on). */
  drop(rendition: string, mediaSequence: number): void {
    if (this.#demands.drop(rendition, mediaSequence))
      this.#transfers.cancel(rendition, mediaSequence, 'dropped');
  }

  // ------------------------------------------------------------------ reports and stats

  #report(): PeerReport | undefined {
    if (!this.peerId || this.#destroyed) return undefined;
    const held = this.#deps.store.heldRanges(this.rendition);
    const playback = this.#playbackProbe();
    const neighbours = this.#links.openNeighbours().map((n) => n.id);
    const receivedFrom: Record<string, number> = {};
    for (const id of neighbours) if (this.receivedFrom[id]) receivedFrom[id] = this.receivedFrom[id]!;
    return {
      rendition: this.rendition,
      bufferS: Math.min(3600, Math.max(0, playback.bufferS)),
      held: held.length > 0 ? { first: held[0]![0], last: held.at(-1)![1] } : null,
      uploadKbps: Math.round(
        this.uploads.measuredCapacityKbps() || this.opts.uploadCapKbps || this.opts.declaredUploadKbps,
      ),
      downloadKbps: Math.round((this.downloadRate.rate(this.#deps.clock.now()) * 8) / 1000),
      httpBytes: this.httpBytes,
      p2pBytes: this.p2pBytes,
      uploadedBytes: this.uploads.uploadedBytes,
      neighbours: neighbours.slice(0, 64),
      receivedFrom,
      stalls: playback.stalls,
      ...(this.natType !== 'unknown' && { natType: this.natType }),
    };
  }

  /** Learns an unknown NAT type from the tracker's probe addresses, once, and reports it at once. */
  #probeNat(stunUrls: readonly string[]): void {
    const prober = this.#deps.natProber;
    if (!prober || this.natType !== 'unknown' || this.#natProbing) return;
    this.#natProbing = true;
    prober.probe(stunUrls).then(
      (natType) => {
        this.#natProbing = false;
        if (this.#destroyed || natType === 'unknown') return;
        this.natType = natType;
        this.#log.tracker('NAT type %s (ICE against %s)', natType, stunUrls.join(', '));
        this.#session?.sendReport();
      },
      (err: Error) => {
        this.#natProbing = false;
        this.#log.tracker('NAT probe failed: %s', err.message);
      },
    );
  }

  stats() {
    return {
      peerId: this.peerId,
      rendition: this.rendition,
      firstTier: this.firstTier,
      httpBytes: this.httpBytes,
      p2pBytes: this.p2pBytes,
      uploadedBytes: this.uploads.uploadedBytes,
      peers: this.#links.openNeighbours().length,
      downloadKbps: (this.downloadRate.rate(this.#deps.clock.now()) * 8) / 1000,
      uploadKbps: this.uploads.currentRateKbps(),
    };
  }

  // ------------------------------------------------------------------ helpers

  async #getText(url: string): Promise<string> {
    const res = await this.#deps.http.get(url);
    if (res.status !== 200) throw new EngineError('origin-unavailable', `${url}: HTTP ${res.status}`);
    return new TextDecoder().decode(res.bytes);
  }

  async #getJson(url: string): Promise<unknown> {
    return JSON.parse(await this.#getText(url)) as unknown;
  }

  /**
   * Leaves the tracker, closes every link, cancels every fetch and demand. Idempotent; cascades to
   * the playlist follower, the links, the uploads and the tracker session.
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#deps.clock.clearTimeout(this.#tickTimer);
    this.#playlist.destroy();
    this.#transfers.destroy();
    this.#demands.rejectAll(new EngineError('destroyed', 'engine destroyed'));
    this.#links.destroy();
    this.uploads.destroy();
    this.#session?.destroy();
    for (const u of this.#unsubscribe) u();
    this.removeAllListeners();
  }
}
