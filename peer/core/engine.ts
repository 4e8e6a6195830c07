/**
 * The P2P engine, a facade: it wires the tracker session (tracker-session.ts), the links to
 * neighbours (links.ts), the playlist follower (playlist-follower.ts), the attestation cache
 * (attestations.ts) and the scheduler (scheduler.ts, a pure decision step), performs what the
 * scheduler decides, and owns `destroy()`. It serves `load()` demands deadline-aware: P2P when a
 * neighbour holds the segment and can deliver it in time with a safety margin, HTTP from the origin
 * otherwise, switching a slow or silent P2P transfer to HTTP in time. Every byte is verified against
 * the channel's signed attestation before it is stored, played or uploaded. Every neighbour has a
 * budget (budget.ts); bytes whose attestation cannot be had yet are held (unverified.ts).
 *
 * Isomorphic: time, network, HTTP and the tracker session are injected (see seams.ts).
 */
import {
  segmentKey,
  TypedEmitter,
  checkSegmentBytes,
  type Attestation,
  type ChannelInfo,
  type IceServer,
  type NatType,
  type PeerErrorCode,
  type PeerKind,
  type PeerMode,
  type PeerReport,
} from '../../protocol/index.ts';
import { AttestationCache } from './attestations.ts';
import { budgetOptions, type BudgetOptions, type StreamLadder } from './budget.ts';
import { Ewma, RateMeter } from './estimators.ts';
import { parseMasterPlaylist } from './hls.ts';
import { Links } from './links.ts';
import { DownloadAbort, type Download, type Neighbour } from './neighbour.ts';
import { PlaylistFollower, type KnownSegment } from './playlist-follower.ts';
import {
  schedule,
  type NeighbourView,
  type SchedulerAction,
  type SchedulerInput,
  type TransferView,
} from './scheduler.ts';
import { toRanges, type SegmentStore } from './segment-store.ts';
import type { Clock, HttpFetcher, LinkRoute, TimerHandle, TrackerConnection, Transport } from './seams.ts';
import { TrackerSession } from './tracker-session.ts';
import { UnverifiedHold } from './unverified.ts';
import { UploadManager, type UploadOptions } from './upload.ts';

export type { KnownSegment } from './playlist-follower.ts';

/** Where a segment's attestation lives: beside the segment, `.json` for `.ts`. */
const segmentRecordUrl = (segmentUrl: string): string => segmentUrl.replace(/\.ts$/, '.json');

export interface EngineOptions {
  channel: string;
  kind: PeerKind;
  mode: PeerMode;
  /** A rendition name, or 'auto' (the player picks by throughput; starts at the lowest). */
  rendition: string;
  /** Upload cap in kbit/s; 0 = no cap. */
  uploadCapKbps: number;
  /** Upload capacity declared at join until one is measured (kbit/s). */
  declaredUploadKbps: number;
  natType: NatType;
  /** Origin to use when the tracker cannot be reached (otherwise the tracker's channel info says). */
  originUrl: string | undefined;
  /** Master playlist to play instead of the live one (a recording, progressive download through the swarm). */
  masterUrl: string | undefined;
  /** False: never use P2P (the HTTP-only baseline). */
  p2p: boolean;
  /**
   * The player picks the rendition (hls.js's ABR) and says so with `setRendition`: until it has, a
   * first-tier peer fetches nothing ahead (it would fetch the tracker's default rendition for no one).
   */
  followPlayerRendition: boolean;
  /** A P2P transfer must be expected to finish this long before its deadline. */
  safetyMarginMs: number;
  /** A P2P transfer without progress for this long is switched to HTTP. */
  p2pStallMs: number;
  /** Links kept at most. */
  maxNeighbours: number;
  /** A link that has not connected after this long is dropped. */
  connectTimeoutMs: number;
  schedulerTickMs: number;
  /** Segments of the live window kept in memory for neighbours. */
  keepSegments: number;
  upload: Partial<UploadOptions>;
  /** What one neighbour may cost us, and how many failed transfers demote and then drop it. */
  budget: Partial<BudgetOptions>;
  /**
   * After a reconnection to the tracker, a join that fails (refused as `unknown-channel` while the
   * source has not registered again, or the request itself failing) is retried after this delay,
   * doubling up to `joinRetryMaxMs`, each delay ± `joinRetryJitter` (a fraction) at random.
   */
  joinRetryMs: number;
  joinRetryMaxMs: number;
  joinRetryJitter: number;
  /**
   * Segments whose bytes arrived while their attestation could not be had (origin down, no push yet)
   * are held, at most this many (the oldest dropped first), for at most `unverifiedHoldMs`, while the
   * attestation is fetched again after `attestationRetryMs`, doubling up to `attestationRetryMaxMs`.
   */
  unverifiedHoldSegments: number;
  unverifiedHoldMs: number;
  attestationRetryMs: number;
  attestationRetryMaxMs: number;
  /** A neighbour closed for a fault is not linked with again for this long… */
  banMs: number;
  /** …or this long when the fault was only being unresponsive. */
  unresponsiveBanMs: number;
  /** Banned peers remembered at most (the oldest ban is forgotten first). */
  maxBanned: number;
}

export const DEFAULT_ENGINE: Omit<EngineOptions, 'channel'> = {
  kind: 'node',
  mode: 'viewer',
  rendition: 'auto',
  uploadCapKbps: 0,
  declaredUploadKbps: 10_000,
  natType: 'unknown',
  originUrl: undefined,
  masterUrl: undefined,
  p2p: true,
  followPlayerRendition: false,
  safetyMarginMs: 700,
  p2pStallMs: 1000,
  maxNeighbours: 12,
  connectTimeoutMs: 10_000,
  schedulerTickMs: 100,
  keepSegments: 12,
  upload: {},
  budget: {},
  joinRetryMs: 250,
  joinRetryMaxMs: 2000,
  joinRetryJitter: 0.5,
  unverifiedHoldSegments: 4,
  unverifiedHoldMs: 30_000,
  attestationRetryMs: 250,
  attestationRetryMaxMs: 4000,
  banMs: 3_600_000,
  unresponsiveBanMs: 600_000,
  maxBanned: 1024,
};

/** Top bitrate and segment duration assumed until the channel's ladder is known. */
const FALLBACK_TOP_BITRATE_BPS = 8_000_000;
/** Segments fetched by the player before the engine was ready, kept for verification at most. */
const MAX_ADOPTED_BEFORE_READY = 4;
const FALLBACK_SEGMENT_DURATION_S = 2;

export interface EngineDeps {
  clock: Clock;
  transport: Transport;
  http: HttpFetcher;
  tracker: TrackerConnection | undefined;
  store: SegmentStore;
  /** Uniform in [0, 1): jitter of retries (default Math.random; tests inject their own). */
  random?: () => number;
}

export interface Variant {
  name: string;
  bandwidthBps: number;
  width?: number;
  height?: number;
}

export type SegmentSourceKind = 'http' | 'p2p';

export type EngineEvents = {
  /** Channel, key and first playlist known: `load()` can be served. */
  ready: () => void;
  /** The media playlist of the current rendition changed. */
  playlist: (info: { newest: number; oldest: number; ended: boolean }) => void;
  'segment-loaded': (info: {
    rendition: string;
    mediaSequence: number;
    source: SegmentSourceKind;
    from?: string;
    bytes: number;
    ms: number;
    /** Delivered after the deadline of the demand that asked for it. */
    late: boolean;
  }) => void;
  /**
   * P2P made a demanded segment late: a transfer switched to HTTP (stalled or too slow), P2P bytes
   * that arrived after the deadline, or HTTP started late because the engine waited for a neighbour.
   * (The player attributes stalls with it.)
   */
  'p2p-late': (info: {
    rendition: string;
    mediaSequence: number;
    why: 'stalled' | 'too slow' | 'after deadline' | 'waited';
    from?: string;
  }) => void;
  'segment-rejected': (info: {
    rendition: string;
    mediaSequence: number;
    reason: string;
    from?: string;
  }) => void;
  /** `connectMs`: from creating the link to the data channel's open handshake. */
  'peer-connected': (info: { id: string; connectMs: number }) => void;
  /**
   * The connected link's path (WebRTC transports): direct (host, srflx, prflx) or relayed through TURN.
   * `first` on the first report; later ones mean ICE switched to another candidate pair.
   */
  'peer-route': (info: { id: string; route: LinkRoute; connectMs: number; first: boolean }) => void;
  /** `code`: the stable error code when the link was closed for a fault (see PEER_ERROR_CODES). */
  'peer-closed': (info: { id: string; reason: string; code?: PeerErrorCode }) => void;
  'first-tier': (firstTier: boolean) => void;
  'rendition-changed': (rendition: string) => void;
  /** Joined the tracker's swarm (at start, and again after each reconnection). */
  joined: (info: { peerId: string }) => void;
  /**
   * Runtime failures with a stable code: 'tracker-unavailable', 'origin-unavailable',
   * 'playlist-invalid', 'unknown-channel' (at start, when `originUrl` was given: playback goes on
   * from the origin; without it, `start()` throws it).
   */
  error: (info: { code: string; message: string }) => void;
};

export interface LoadResult {
  bytes: Uint8Array;
  /** 'cache': it was already held (fetched earlier, e.g. as first tier or for neighbours). */
  source: SegmentSourceKind | 'cache';
  attestation: Attestation;
}

export class EngineError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Rejects contradictory or nonsensical options (misuse: throws at once). */
function checkOptions(o: EngineOptions): void {
  if (o.uploadCapKbps < 0 || o.declaredUploadKbps < 0)
    throw new RangeError('upload rates must not be negative');
  if (!(o.joinRetryMs > 0) || !(o.joinRetryMaxMs >= o.joinRetryMs))
    throw new RangeError('joinRetryMs must be > 0 and joinRetryMaxMs ≥ joinRetryMs');
  if (!(o.joinRetryJitter >= 0 && o.joinRetryJitter < 1))
    throw new RangeError('joinRetryJitter must be in [0, 1)');
  if (!(o.attestationRetryMs > 0) || !(o.attestationRetryMaxMs >= o.attestationRetryMs))
    throw new RangeError('attestationRetryMs must be > 0 and attestationRetryMaxMs ≥ attestationRetryMs');
  if (!(o.unverifiedHoldSegments >= 0) || !(o.unverifiedHoldMs >= 0))
    throw new RangeError('unverifiedHoldSegments and unverifiedHoldMs must be ≥ 0');
  if (!(o.banMs >= 0) || !(o.unresponsiveBanMs >= 0) || !(o.maxBanned >= 1))
    throw new RangeError('banMs and unresponsiveBanMs must be ≥ 0, maxBanned ≥ 1');
}

interface Demand {
  rendition: string;
  mediaSequence: number;
  deadlineAt: number;
  createdAt: number;
  /** HTTP was started only after waiting for a neighbour to hold it (P2P's responsibility if late). */
  waitedForP2p?: boolean;
  waiters: { resolve: (r: LoadResult) => void; reject: (e: Error) => void }[];
}

/** A segment being fetched: from the origin (abortable), or from a neighbour (a download). */
type Fetch = { rendition: string; mediaSequence: number; startedAt: number } & (
  { via: 'http'; abort: AbortController } | { via: 'p2p'; neighbour: Neighbour; download: Download }
);

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
  readonly uploads: UploadManager;
  httpBytes = 0;
  p2pBytes = 0;
  readonly receivedFrom: Record<string, number> = {};
  readonly downloadRate = new RateMeter(5000);
  /** Segment download throughput over HTTP (bytes/s) and its time to first byte (ms). */
  readonly httpThroughput = new Ewma(0.3, 500_000);
  readonly httpFirstByteMs = new Ewma(0.3, 100);
  readonly ladder: StreamLadder;
  readonly #links: Links;
  readonly #playlist: PlaylistFollower;
  readonly #attestations: AttestationCache;
  readonly #session: TrackerSession | undefined;
  readonly #demands = new Map<string, Demand>();
  readonly #fetches = new Map<string, Fetch>();
  readonly #unverified: UnverifiedHold<Fetch>;
  /** Rendition names of the ladder (master playlist and tracker's channel info). */
  readonly #ladderNames = new Set<string>();
  #variantUrls = new Map<string, string>();
  #tickTimer: TimerHandle | undefined;
  #playbackProbe: () => { bufferS: number; stalls: number } = () => ({ bufferS: 0, stalls: 0 });
  #ready = false;
  /** The player said which rendition it plays (see `followPlayerRendition`). */
  #renditionSet = false;
  readonly #adopted = new Map<string, { rendition: string; mediaSequence: number; bytes: Uint8Array }>();
  #destroyed = false;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(opts: Partial<EngineOptions> & Pick<EngineOptions, 'channel'>, deps: EngineDeps) {
    super();
    this.opts = { ...DEFAULT_ENGINE, ...opts };
    checkOptions(this.opts);
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
    this.#unverified = new UnverifiedHold(
      deps.clock,
      {
        maxEntries: o.unverifiedHoldSegments,
        maxHoldMs: o.unverifiedHoldMs,
        retryMs: o.attestationRetryMs,
        retryMaxMs: o.attestationRetryMaxMs,
      },
      {
        retry: (key, held) => void this.#retryAttestation(key, held),
        bytesDropped: (_key, held) =>
          this.emit('segment-rejected', {
            rendition: held.rendition,
            mediaSequence: held.mediaSequence,
            reason: 'attestation-unavailable',
            ...(held.via === 'p2p' && { from: held.neighbour.id }),
          }),
        released: () => this.#scheduleTick(0),
      },
    );
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
      },
      { ...o.upload, capKbps: o.uploadCapKbps },
      this.ladder,
    );
    this.#attestations = new AttestationCache(o.channel, {
      getJson: (url) => this.#getJson(url),
      recordUrl: (rendition, seq) => segmentRecordUrl(this.#segmentUrl(rendition, seq)),
      rejected: (info) => this.emit('segment-rejected', info),
    });
    this.#playlist = new PlaylistFollower(o.keepSegments, {
      clock: deps.clock,
      getText: (url) => this.#getText(url),
      updated: (u) => {
        if (u.windowStart !== undefined) this.#attestations.pruneBefore(u.windowStart);
        deps.store.setWindow(u.rendition, Math.max(0, u.newest - o.keepSegments));
        this.emit('playlist', { newest: u.newest, oldest: u.oldest, ended: u.ended });
        this.#scheduleTick(0);
      },
      failed: (message) => {
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
      connected: (info) => this.emit('peer-connected', info),
      route: (info) => this.emit('peer-route', info),
      closed: (info) => this.emit('peer-closed', info),
      changed: () => this.#scheduleTick(0),
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
      wantedRendition: () =>
        this.opts.rendition === 'auto' ? this.rendition || undefined : this.opts.rendition,
      applyJoin: (ack) => {
        this.peerId = ack.peerId;
        this.iceServers = ack.iceServers;
        this.#setChannelInfo(ack.channel);
        this.rendition ||= ack.rendition;
        this.#setFirstTier(ack.firstTier);
        for (const id of ack.neighbours) this.#links.introduce(id);
      },
      joined: (peerId) => this.emit('joined', { peerId }),
      report: () => this.#report(),
      failed: (message) => this.emit('error', { code: 'tracker-unavailable', message }),
      neighbours: (u) => {
        this.#setFirstTier(u.firstTier);
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
        this.emit('error', { code: 'tracker-unavailable', message: `${joined.code}: ${joined.message}` });
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
    const meta = await this.#getJson(`${this.originUrl}/channels/${this.opts.channel}/channel.json`);
    const o = meta as { publicKey?: unknown; live?: { master?: unknown } | null; status?: unknown };
    if (typeof o.publicKey !== 'string')
      throw new EngineError('origin-unavailable', 'channel.json without a public key');
    await this.#attestations.setKey(o.publicKey);
    const masterUrl = this.opts.masterUrl ?? (typeof o.live?.master === 'string' ? o.live.master : undefined);
    if (!masterUrl)
      throw new EngineError('channel-offline', `channel ${this.opts.channel} is not broadcasting`);
    const master = parseMasterPlaylist(await this.#getText(masterUrl), masterUrl);
    for (const v of master.variants) this.#ladderNames.add(v.name);
    this.variants = master.variants
      .map((v) => ({
        name: v.name,
        bandwidthBps: v.bandwidthBps,
        width: v.width,
        height: v.height,
        url: v.url,
      }))
      .sort((a, b) => a.bandwidthBps - b.bandwidthBps);
    if (this.variants.length === 0)
      throw new EngineError('playlist-invalid', 'master playlist without variants');
    this.#variantUrls = new Map(master.variants.map((v) => [v.name, v.url]));
    const wanted =
      this.opts.rendition === 'auto' ? this.rendition || this.variants[0]!.name : this.opts.rendition;
    const playlistUrl = this.#variantUrls.get(wanted);
    if (playlistUrl === undefined) throw new EngineError('playlist-invalid', `no rendition ${wanted}`);
    this.rendition = wanted;
    await this.#playlist.follow(wanted, playlistUrl);
    this.#ready = true;
    for (const [key, a] of this.#adopted) this.#adoptNow(key, a.rendition, a.mediaSequence, a.bytes);
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
    const key = this.#keyOf(rendition, mediaSequence);
    if (this.#destroyed || this.#deps.store.has(rendition, mediaSequence) || this.#fetches.has(key)) return;
    if (this.#ready) return this.#adoptNow(key, rendition, mediaSequence, bytes);
    if (this.#adopted.size >= MAX_ADOPTED_BEFORE_READY) return;
    this.#adopted.set(key, { rendition, mediaSequence, bytes });
  }

  #adoptNow(key: string, rendition: string, mediaSequence: number, bytes: Uint8Array): void {
    if (this.#deps.store.has(rendition, mediaSequence) || this.#fetches.has(key)) return;
    const adopted: Fetch = {
      rendition,
      mediaSequence,
      via: 'http',
      startedAt: this.#deps.clock.now(),
      abort: new AbortController(),
    };
    this.#fetches.set(key, adopted);
    void this.#onBytes(adopted, bytes);
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
      const heldKey = segmentKey(att);
      if (this.#unverified.has(heldKey)) void this.#retryAttestation(heldKey);
      if (att.rendition === this.rendition) {
        this.#playlist.notePublished(att.mediaSequence);
        // A first-tier peer fetches a fresh segment as soon as it is published.
        if (this.firstTier) this.#scheduleTick(0);
      }
    });
  }

  #segmentUrl(rendition: string, seq: number): string {
    const k = rendition === this.rendition ? this.known.get(seq) : undefined;
    return k?.url ?? `${this.originUrl}/channels/${this.opts.channel}/segments/${rendition}/${seq}.ts`;
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
    const key = this.#keyOf(rendition, mediaSequence);
    let demand = this.#demands.get(key);
    if (!demand) {
      demand = { rendition, mediaSequence, deadlineAt, createdAt: this.#deps.clock.now(), waiters: [] };
      this.#demands.set(key, demand);
    }
    demand.deadlineAt = Math.min(demand.deadlineAt, deadlineAt);
    const p = new Promise<LoadResult>((resolve, reject) => demand.waiters.push({ resolve, reject }));
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
    if (delayMs > 0 && this.#tickTimer !== undefined) return;
    this.#deps.clock.clearTimeout(this.#tickTimer);
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
    const now = this.#deps.clock.now();
    const neighbours: NeighbourView[] = [];
    for (const n of this.neighbours.values())
      neighbours.push({
        id: n.id,
        open: n.open,
        demoted: n.demoted,
        busyUntil: n.busyUntil,
        inFlight: n.downloads.size,
        firstByteMs: n.firstByteMs.value,
        throughputBps: n.throughput.value,
        receivedBytes: this.receivedFrom[n.id] ?? 0,
        holdsSegment: (r, s) => n.holdsSegment(r, s),
      });
    return {
      now,
      opts: this.opts,
      demands: this.#demands.values(),
      neighbours,
      estimates: {
        expectedBytes: (r, s) => this.#expectedSize(r, s),
        httpEstimateMs: (bytes) =>
          this.httpFirstByteMs.value + (bytes / Math.max(1, this.httpThroughput.value)) * 1000,
        topBitrateBps: this.ladder.topBitrateBps(),
      },
      transfer: (r, s): TransferView | undefined => {
        const f = this.#fetches.get(this.#keyOf(r, s));
        if (!f) return undefined;
        if (f.via === 'http') return { via: 'http' };
        return {
          via: 'p2p',
          neighbourId: f.neighbour.id,
          neighbourThroughputBps: f.neighbour.throughput.value,
          inFlight: f.neighbour.downloads.get(f.download.requestId) === f.download,
          download: f.download,
        };
      },
      unverified: (r, s) => this.#unverified.has(this.#keyOf(r, s)),
      held: (r, s) => this.#deps.store.has(r, s),
      firstTier: {
        active: this.firstTier,
        rendition: this.rendition,
        newestPublished: this.newestPublished,
        renditionSet: this.#renditionSet,
        isGap: (s) => this.known.get(s)?.gap ?? false,
      },
    };
  }

  #perform(action: SchedulerAction): void {
    const { rendition, mediaSequence: seq } = action;
    const key = this.#keyOf(rendition, seq);
    switch (action.type) {
      case 'pull':
        return this.#startHttp(rendition, seq);
      case 'http': {
        const demand = this.#demands.get(key);
        if (demand && action.waitedForP2p !== undefined) demand.waitedForP2p = action.waitedForP2p;
        return this.#startHttp(rendition, seq);
      }
      case 'p2p': {
        const n = this.neighbours.get(action.neighbourId);
        if (n) this.#startP2p(n, rendition, seq, action.deadlineAt);
        return;
      }
      case 'switch': {
        const f = this.#fetches.get(key);
        if (f?.via !== 'p2p') return;
        const n = f.neighbour;
        const { why } = action;
        n.cancel(f.download, why);
        this.#fetches.delete(key);
        this.#startHttp(rendition, seq);
        this.emit('p2p-late', { rendition, mediaSequence: seq, why, from: n.id });
        // Demoted for a while; a few failures in a row close the link (peer-unresponsive).
        if (action.blame) n.failed(action.why);
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

  #startP2p(n: Neighbour, rendition: string, seq: number, deadlineAt: number): void {
    const key = this.#keyOf(rendition, seq);
    const att = this.#attestations.known(rendition, seq);
    const download = n.request(rendition, seq, deadlineAt - this.#deps.clock.now(), att?.byteLength);
    const transfer: Fetch = {
      rendition,
      mediaSequence: seq,
      via: 'p2p',
      startedAt: this.#deps.clock.now(),
      neighbour: n,
      download,
    };
    this.#fetches.set(key, transfer);
    download.promise.then(
      (bytes) => void this.#onBytes(transfer, bytes),
      (err: Error) => {
        if (this.#fetches.get(key) !== transfer) return;
        this.#fetches.delete(key);
        if (err instanceof DownloadAbort && err.reason === 'bad-data')
          this.emit('segment-rejected', {
            rendition,
            mediaSequence: seq,
            reason: 'peer-protocol-violation',
            from: n.id,
          });
        if (!(err instanceof DownloadAbort) || err.reason !== 'cancelled') this.#scheduleTick(0);
      },
    );
  }

  #startHttp(rendition: string, seq: number): void {
    const key = this.#keyOf(rendition, seq);
    const abort = new AbortController();
    const request: Fetch = {
      rendition,
      mediaSequence: seq,
      via: 'http',
      startedAt: this.#deps.clock.now(),
      abort,
    };
    this.#fetches.set(key, request);
    let firstByteAt: number | undefined;
    this.#deps.http
      .get(this.#segmentUrl(rendition, seq), {
        signal: abort.signal,
        onProgress: () => (firstByteAt ??= this.#deps.clock.now()),
      })
      .then((res) => {
        if (res.status !== 200)
          throw new EngineError('origin-unavailable', `segment ${rendition}/${seq}: HTTP ${res.status}`);
        const now = this.#deps.clock.now();
        if (firstByteAt !== undefined) this.httpFirstByteMs.add(firstByteAt - request.startedAt);
        if (res.bytes.byteLength > 32 * 1024)
          this.httpThroughput.add(
            res.bytes.byteLength / Math.max(0.001, (now - (firstByteAt ?? request.startedAt)) / 1000),
          );
        return this.#onBytes(request, res.bytes);
      })
      .catch((err: Error) => {
        if (this.#fetches.get(key) === request) this.#fetches.delete(key);
        if (this.#destroyed || abort.signal.aborted) return; // dropped on purpose
        this.emit('error', { code: 'origin-unavailable', message: err.message });
        // Retry soon; a demand past its deadline is still wanted (the player is stalled on it).
        this.#deps.clock.setTimeout(() => this.#scheduleTick(0), 300);
      });
  }

  async #onBytes(got: Fetch, bytes: Uint8Array): Promise<void> {
    const { rendition, mediaSequence: seq } = got;
    const key = this.#keyOf(rendition, seq);
    const att = await this.#attestations.get(rendition, seq);
    if (this.#destroyed || this.#fetches.get(key) !== got) return;
    this.#fetches.delete(key);
    if (!att) {
      // Cannot be checked yet (origin down, no push yet): hold the bytes and fetch the record again
      // with backoff; the sender is not blamed, and the segment is not downloaded again meanwhile.
      if (!this.#deps.store.has(rendition, seq)) this.#unverified.hold(key, got, bytes);
      return;
    }
    await this.#accept(got, bytes, att);
  }

  /** Fetches the attestation of held bytes again; checks and delivers them once it is known. */
  async #retryAttestation(key: string, meta?: Fetch): Promise<void> {
    const f = meta ?? this.#unverified.peek(key);
    if (!f) return;
    const att = await this.#attestations.get(f.rendition, f.mediaSequence);
    if (this.#destroyed || !att) return;
    const held = this.#unverified.take(key);
    if (!held || this.#deps.store.has(f.rendition, f.mediaSequence)) return;
    // Bytes let go meanwhile: fetch the segment again, now that it can be checked.
    if (!held.bytes) return this.#scheduleTick(0);
    await this.#accept(held.meta, held.bytes, att);
  }

  /** Checks bytes against their attestation; stores and delivers them, or rejects them. */
  async #accept(got: Fetch, bytes: Uint8Array, att: Attestation): Promise<void> {
    const { rendition, mediaSequence: seq } = got;
    const key = this.#keyOf(rendition, seq);
    const from = got.via === 'p2p' ? got.neighbour.id : undefined;
    const check = await checkSegmentBytes(att, bytes);
    if (this.#destroyed) return;
    if (!check.ok) {
      const reason = check.code;
      this.emit('segment-rejected', { rendition, mediaSequence: seq, reason, ...(from && { from }) });
      // Drop the bytes; a neighbour that sent bad data is cut off; fetch again from the origin.
      if (got.via === 'p2p') got.neighbour.close('peer-sent-bad-segment', `${rendition}/${seq}: ${reason}`);
      if (this.#fetches.has(key)) return;
      if (got.via === 'p2p') this.#startHttp(rendition, seq);
      else this.#deps.clock.setTimeout(() => this.#scheduleTick(0), 500);
      return;
    }
    const ms = this.#deps.clock.now() - got.startedAt;
    const now = this.#deps.clock.now();
    this.downloadRate.add(now, bytes.byteLength);
    if (got.via === 'http') this.httpBytes += bytes.byteLength;
    else {
      this.p2pBytes += bytes.byteLength;
      const id = got.neighbour.id;
      this.receivedFrom[id] = (this.receivedFrom[id] ?? 0) + bytes.byteLength;
    }
    this.#deps.store.put(rendition, seq, bytes, att);
    const demand = this.#demands.get(key);
    const late = demand !== undefined && now > demand.deadlineAt;
    this.emit('segment-loaded', {
      rendition,
      mediaSequence: seq,
      source: got.via,
      bytes: bytes.byteLength,
      ms,
      late,
      ...(from && { from }),
    });
    if (late && (got.via === 'p2p' || demand.waitedForP2p))
      this.emit('p2p-late', {
        rendition,
        mediaSequence: seq,
        why: got.via === 'p2p' ? 'after deadline' : 'waited',
        ...(from && { from }),
      });
    if (demand) {
      this.#demands.delete(key);
      for (const w of demand.waiters) w.resolve({ bytes, source: got.via, attestation: att });
    }
  }

  /** True when a verified segment is held (fetched and kept for neighbours). */
  hasSegment(rendition: string, mediaSequence: number): boolean {
    return this.#deps.store.has(rendition, mediaSequence);
  }

  /** Gives up a demand (the player moved on). */
  drop(rendition: string, mediaSequence: number): void {
    const key = this.#keyOf(rendition, mediaSequence);
    const demand = this.#demands.get(key);
    if (!demand) return;
    this.#demands.delete(key);
    for (const w of demand.waiters) w.reject(new EngineError('dropped', 'no longer needed'));
    const f = this.#fetches.get(key);
    if (!f) return;
    this.#fetches.delete(key);
    if (f.via === 'p2p') f.neighbour.cancel(f.download, 'dropped');
    else f.abort.abort();
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
    };
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
    this.#unverified.destroy();
    for (const f of this.#fetches.values()) {
      if (f.via === 'http') f.abort.abort();
      else f.neighbour.cancel(f.download, 'destroyed');
    }
    this.#fetches.clear();
    for (const d of this.#demands.values())
      for (const w of d.waiters) w.reject(new EngineError('destroyed', 'engine destroyed'));
    this.#demands.clear();
    this.#links.destroy();
    this.uploads.destroy();
    this.#session?.destroy();
    for (const u of this.#unsubscribe) u();
    this.removeAllListeners();
  }
}
