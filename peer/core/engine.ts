/**
 * The P2P engine: joins the tracker, keeps WebRTC neighbours, learns segments from the origin's
 * playlist and the tracker's attestation pushes, and serves `load()` demands with a deadline-aware
 * scheduler: P2P when a neighbour holds the segment and can deliver it in time with a safety margin,
 * HTTP from the origin otherwise, switching a slow or silent P2P transfer to HTTP in time. Every byte
 * is verified against the channel's signed attestation before it is stored, played or uploaded.
 * Every neighbour has a budget (budget.ts): what it may ask of us and send us, and how often its
 * transfers may fail before it is demoted, then dropped; a link closed for a fault the engine saw
 * itself is reported to the tracker. After a tracker restart the engine joins again with backoff
 * until the channel is back; bytes whose attestation cannot be had yet are held (unverified.ts).
 *
 * Isomorphic: time, network, HTTP and the tracker session are injected (see seams.ts).
 */
import {
  checkAttestationFor,
  importChannelKey,
  PEER_COMPLAINT_CODES,
  parseAttestation,
  segmentKey,
  TRACKER_PROTOCOL_VERSION,
  TypedEmitter,
  verifyAttestationSignature,
  checkSegmentBytes,
  type Attestation,
  type ChannelInfo,
  type IceServer,
  type NatType,
  type PeerComplaintCode,
  type PeerErrorCode,
  type PeerKind,
  type PeerMode,
  type PeerReport,
  type TrackerErrorCode,
} from '../../protocol/index.ts';
import { BanList, budgetOptions, type BudgetOptions, type StreamLadder } from './budget.ts';
import { Ewma, RateMeter } from './estimators.ts';
import { parseMasterPlaylist, parseMediaPlaylist } from './hls.ts';
import { DownloadAbort, Neighbour, type Download } from './neighbour.ts';
import { toRanges, type SegmentStore } from './segment-store.ts';
import type {
  Clock,
  HttpFetcher,
  LinkRoute,
  TimerHandle,
  TrackerConnection,
  TrackerConnectionEvents,
  Transport,
} from './seams.ts';
import { UnverifiedHold } from './unverified.ts';
import { UploadManager, type UploadOptions } from './upload.ts';

/** When a connected link's route (selected candidate pair) is read, in ms after the channel opened. */
const ROUTE_CHECKS_MS = [0, 250, 500, 1000, 2000, 4000];

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

/** Tracker refusals worth trying again after a reconnection (the tracker may still be warming up). */
const TRANSIENT_JOIN_REFUSALS: readonly TrackerErrorCode[] = [
  'unknown-channel',
  'rate-limited',
  'tracker-full',
  'internal',
];
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

export interface KnownSegment {
  rendition: string;
  mediaSequence: number;
  discontinuitySequence: number;
  durationS: number;
  url: string;
  gap: boolean;
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

interface Demand {
  rendition: string;
  mediaSequence: number;
  deadlineAt: number;
  createdAt: number;
  /** HTTP was started only after waiting for a neighbour to hold it (P2P's responsibility if late). */
  waitedForP2p?: boolean;
  waiters: { resolve: (r: LoadResult) => void; reject: (e: Error) => void }[];
}

interface Fetch {
  rendition: string;
  mediaSequence: number;
  via: SegmentSourceKind;
  startedAt: number;
  neighbour?: Neighbour;
  download?: Download;
  abort?: AbortController;
}

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

/** How a join went: joined, or why not (`request-failed`: no answer, or the connection dropped). */
type JoinOutcome =
  { ok: true; info: ChannelInfo } | { ok: false; code: TrackerErrorCode | 'request-failed'; message: string };

const isComplaint = (code: PeerErrorCode | undefined): code is PeerComplaintCode =>
  (PEER_COMPLAINT_CODES as readonly string[]).includes(code ?? '');

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

export class PeerEngine extends TypedEmitter<EngineEvents> {
  readonly opts: EngineOptions;
  readonly #d: EngineDeps;
  peerId = '';
  firstTier = false;
  channelInfo: ChannelInfo | undefined;
  originUrl = '';
  variants: Variant[] = [];
  rendition = '';
  iceServers: IceServer[] = [];
  readonly neighbours = new Map<string, Neighbour>();
  readonly uploads: UploadManager;
  /** Known segments of the current rendition, by media sequence. */
  readonly known = new Map<number, KnownSegment>();
  newestPublished = -1;
  ended = false;
  httpBytes = 0;
  p2pBytes = 0;
  readonly receivedFrom: Record<string, number> = {};
  readonly downloadRate = new RateMeter(5000);
  /** Segment download throughput over HTTP (bytes/s) and its time to first byte (ms). */
  readonly httpThroughput = new Ewma(0.3, 500_000);
  readonly httpFirstByteMs = new Ewma(0.3, 100);
  #key: CryptoKey | undefined;
  readonly #attestations = new Map<string, Attestation>();
  readonly #attestationFetches = new Map<string, Promise<Attestation | undefined>>();
  readonly #demands = new Map<string, Demand>();
  readonly #fetches = new Map<string, Fetch>();
  readonly #introduced = new Set<string>();
  readonly #banned: BanList;
  /** Peers already reported to the tracker (once each). */
  readonly #reported: BanList;
  readonly #unverified: UnverifiedHold<Fetch>;
  readonly #budget: BudgetOptions;
  readonly #random: () => number;
  /** Bumped by every (re)connection and by destroy: a join retry of an older one stops. */
  #joinEpoch = 0;
  #joinRetryTimer: TimerHandle | undefined;
  /** Rendition names of the ladder (master playlist and tracker's channel info). */
  readonly #ladderNames = new Set<string>();
  readonly ladder: StreamLadder;
  readonly #redials = new Map<string, number>();
  readonly #connectTimers = new Map<string, TimerHandle>();
  #mediaPlaylistUrl = '';
  #playlistTimer: TimerHandle | undefined;
  #tickTimer: TimerHandle | undefined;
  #reportTimer: TimerHandle | undefined;
  #reportIntervalMs = 5000;
  #playbackProbe: () => { bufferS: number; stalls: number } = () => ({ bufferS: 0, stalls: 0 });
  #destroyed = false;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(opts: Partial<EngineOptions> & Pick<EngineOptions, 'channel'>, deps: EngineDeps) {
    super();
    this.opts = { ...DEFAULT_ENGINE, ...opts };
    checkOptions(this.opts);
    this.#budget = budgetOptions(this.opts.budget);
    this.#d = deps;
    this.#random = deps.random ?? Math.random;
    this.#banned = new BanList(this.opts.maxBanned);
    this.#reported = new BanList(this.opts.maxBanned);
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
        maxEntries: this.opts.unverifiedHoldSegments,
        maxHoldMs: this.opts.unverifiedHoldMs,
        retryMs: this.opts.attestationRetryMs,
        retryMaxMs: this.opts.attestationRetryMaxMs,
      },
      {
        retry: (key, fetch) => void this.#retryAttestation(key, fetch),
        bytesDropped: (_key, fetch) =>
          this.emit('segment-rejected', {
            rendition: fetch.rendition,
            mediaSequence: fetch.mediaSequence,
            reason: 'attestation-unavailable',
            ...(fetch.neighbour && { from: fetch.neighbour.id }),
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
      { ...this.opts.upload, capKbps: this.opts.uploadCapKbps },
      this.ladder,
    );
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

  get clock(): Clock {
    return this.#d.clock;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Lets the player report buffer and stalls to the tracker. */
  setPlaybackProbe(probe: () => { bufferS: number; stalls: number }): void {
    this.#playbackProbe = probe;
  }

  // ------------------------------------------------------------------ start-up

  /**
   * Joins the tracker (or goes HTTP-only), loads the channel key and the playlists. When the origin is
   * known up front (`originUrl`: the web player has it from the directory), nothing waits for the
   * tracker: the join runs beside the key and playlist fetches, and P2P takes over once it is in.
   */
  async start(): Promise<void> {
    const { tracker } = this.#d;
    let info: ChannelInfo | undefined;
    if (tracker && this.opts.p2p) {
      this.#wireTracker(tracker);
      const epoch = this.#joinEpoch;
      const joining = this.#join(tracker).then((joined) => {
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
        if (this.#transient(joined.code) && epoch === this.#joinEpoch) this.#retryJoin(tracker, epoch, 0);
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
    this.#key = await importChannelKey(o.publicKey);
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
    if (!this.#variantUrls.has(wanted)) throw new EngineError('playlist-invalid', `no rendition ${wanted}`);
    this.rendition = wanted;
    this.#mediaPlaylistUrl = this.#variantUrls.get(wanted)!;
    await this.#pollPlaylist();
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
    const key = `${rendition}/${mediaSequence}`;
    if (this.#destroyed || this.#d.store.has(rendition, mediaSequence) || this.#fetches.has(key)) return;
    if (this.#ready) return this.#adoptNow(key, rendition, mediaSequence, bytes);
    if (this.#adopted.size >= MAX_ADOPTED_BEFORE_READY) return;
    this.#adopted.set(key, { rendition, mediaSequence, bytes });
  }

  #adoptNow(key: string, rendition: string, mediaSequence: number, bytes: Uint8Array): void {
    if (this.#d.store.has(rendition, mediaSequence) || this.#fetches.has(key)) return;
    const fetch: Fetch = { rendition, mediaSequence, via: 'http', startedAt: this.#d.clock.now() };
    this.#fetches.set(key, fetch);
    void this.#onBytes(fetch, bytes);
  }

  #ready = false;
  /** The player said which rendition it plays (see `followPlayerRendition`). */
  #renditionSet = false;
  readonly #adopted = new Map<string, { rendition: string; mediaSequence: number; bytes: Uint8Array }>();

  #variantUrls = new Map<string, string>();

  /** One join attempt. Never throws: a refusal or a failed request is an outcome. */
  async #join(tracker: TrackerConnection): Promise<JoinOutcome> {
    const wanted = this.opts.rendition === 'auto' ? this.rendition || undefined : this.opts.rendition;
    let ack;
    try {
      ack = await tracker.join({
        protocolVersion: TRACKER_PROTOCOL_VERSION,
        channel: this.opts.channel,
        kind: this.opts.kind,
        mode: this.opts.mode,
        // 'auto' before the ladder is known: the tracker assigns the lowest rendition.
        ...(wanted && { rendition: wanted }),
        uploadKbps: this.opts.declaredUploadKbps,
        natType: this.opts.natType,
      });
    } catch (err) {
      return { ok: false, code: 'request-failed', message: (err as Error).message };
    }
    if (this.#destroyed) return { ok: false, code: 'request-failed', message: 'engine destroyed' };
    if (!ack.ok) return { ok: false, code: ack.error.code, message: ack.error.message };
    this.peerId = ack.peerId;
    this.iceServers = ack.iceServers;
    this.#setChannelInfo(ack.channel);
    this.rendition ||= ack.rendition;
    this.#setFirstTier(ack.firstTier);
    this.#reportIntervalMs = ack.reportIntervalMs;
    for (const id of ack.neighbours) this.#introduce(id);
    this.#scheduleReport();
    this.emit('joined', { peerId: ack.peerId });
    return { ok: true, info: ack.channel };
  }

  #setChannelInfo(info: ChannelInfo): void {
    this.channelInfo = info;
    for (const r of info.renditions) this.#ladderNames.add(r.name);
  }

  #transient(code: TrackerErrorCode | 'request-failed'): boolean {
    return code === 'request-failed' || TRANSIENT_JOIN_REFUSALS.includes(code);
  }

  /**
   * Joins again after a reconnection (a new session): a refusal as `unknown-channel` (the tracker
   * restarted and the source has not registered again yet) or a failed request is retried with
   * exponential backoff and jitter, until joined, a newer (re)connection, or destroy.
   */
  #rejoin(tracker: TrackerConnection): void {
    const epoch = ++this.#joinEpoch;
    this.#d.clock.clearTimeout(this.#joinRetryTimer);
    void this.#join(tracker).then((r) => this.#afterJoin(tracker, epoch, 0, r));
  }

  #afterJoin(tracker: TrackerConnection, epoch: number, attempt: number, r: JoinOutcome): void {
    if (r.ok || this.#destroyed || epoch !== this.#joinEpoch) return;
    // Another attempt of this session got in first.
    if (r.code === 'already-joined') return;
    if (!this.#transient(r.code)) {
      this.emit('error', { code: 'tracker-unavailable', message: `${r.code}: ${r.message}` });
      return;
    }
    this.#retryJoin(tracker, epoch, attempt);
  }

  #retryJoin(tracker: TrackerConnection, epoch: number, attempt: number): void {
    const { joinRetryMs, joinRetryMaxMs, joinRetryJitter } = this.opts;
    const base = Math.min(joinRetryMaxMs, joinRetryMs * 2 ** attempt);
    const delayMs = base * (1 + joinRetryJitter * (2 * this.#random() - 1));
    this.#d.clock.clearTimeout(this.#joinRetryTimer);
    this.#joinRetryTimer = this.#d.clock.setTimeout(() => {
      this.#joinRetryTimer = undefined;
      if (this.#destroyed || epoch !== this.#joinEpoch) return;
      void this.#join(tracker).then((r) => this.#afterJoin(tracker, epoch, attempt + 1, r));
    }, delayMs);
  }

  #wireTracker(tracker: TrackerConnection): void {
    const handlers: Partial<TrackerConnectionEvents> = {
      neighbours: (u) => {
        this.#setFirstTier(u.firstTier);
        for (const id of u.add) this.#introduce(id);
        // A removed pair keeps its link while it works (the other side may only have lost its tracker
        // session); a page that leaves says bye itself, and dead links close on their own.
        for (const id of u.remove) this.#introduced.delete(id);
      },
      signal: ({ from, data }) => {
        if (this.#destroyed || !this.opts.p2p || this.#isBanned(from)) return;
        let n = this.neighbours.get(from);
        if (!n) {
          if (this.neighbours.size >= this.opts.maxNeighbours) return;
          n = this.#connect(from, false);
        }
        n.link.signal(data);
      },
      attestation: (att) => this.#onAttestation(att),
      channel: (info) => this.#setChannelInfo(info),
      reconnected: () => {
        // A new session: new id and neighbours; existing P2P links stay until they close.
        this.#rejoin(tracker);
      },
      disconnected: () => {
        // A retry of the old session stops; the next reconnection starts over.
        this.#joinEpoch++;
        this.#d.clock.clearTimeout(this.#joinRetryTimer);
      },
    };
    for (const [event, fn] of Object.entries(handlers) as [keyof TrackerConnectionEvents, never][]) {
      tracker.on(event, fn);
      this.#unsubscribe.push(() => tracker.off(event, fn));
    }
  }

  #setFirstTier(v: boolean): void {
    if (this.firstTier === v) return;
    this.firstTier = v;
    this.emit('first-tier', v);
  }

  // ------------------------------------------------------------------ neighbours

  #redial(id: string): void {
    if (this.#destroyed || !this.#introduced.has(id) || this.peerId >= id) return;
    const attempt = (this.#redials.get(id) ?? 0) + 1;
    if (attempt > 3) return;
    this.#redials.set(id, attempt);
    this.#d.clock.setTimeout(
      () => {
        if (!this.#destroyed && !this.neighbours.has(id) && this.neighbours.size < this.opts.maxNeighbours)
          this.#connect(id, true);
      },
      1000 * 2 ** attempt,
    );
  }

  #isBanned(id: string): boolean {
    return this.#banned.has(id, this.#d.clock.now());
  }

  #introduce(id: string): void {
    if (this.#destroyed || !this.opts.p2p || id === this.peerId || this.#isBanned(id)) return;
    this.#introduced.add(id);
    // Of an introduced pair, the peer whose id sorts first sends the offer.
    if (!this.neighbours.has(id) && this.peerId < id && this.neighbours.size < this.opts.maxNeighbours)
      this.#connect(id, true);
  }

  #connect(remoteId: string, initiator: boolean): Neighbour {
    const { clock, transport, tracker } = this.#d;
    const link = transport.createLink({
      localId: this.peerId,
      remoteId,
      initiator,
      iceServers: this.iceServers,
    });
    const n = new Neighbour(
      link,
      clock,
      { peerId: this.peerId, channel: this.opts.channel },
      { ladder: this.ladder, budget: this.#budget },
    );
    const createdAt = clock.now();
    this.neighbours.set(remoteId, n);
    link.on('signal', (data) => {
      void tracker?.signal(remoteId, data).then(
        (ack) => {
          if (!ack.ok) n.close('bye', `signaling refused: ${ack.error.code}`);
        },
        // The tracker is unreachable: the link cannot complete and its connect timer closes it.
        () => {},
      );
    });
    link.on('drain', () => this.uploads.onDrain());
    this.#connectTimers.set(
      remoteId,
      clock.setTimeout(() => {
        if (!n.open) n.close('peer-timeout', 'did not connect in time');
      }, this.opts.connectTimeoutMs),
    );
    n.on('open', () => {
      clock.clearTimeout(this.#connectTimers.get(remoteId));
      this.#connectTimers.delete(remoteId);
      n.announce(this.rendition, this.#d.store.heldRanges(this.rendition), true);
      const connectMs = Math.round(clock.now() - createdAt);
      this.emit('peer-connected', { id: remoteId, connectMs });
      // The selected pair shows up in the stats a moment after the channel opened, and ICE may switch
      // to a better pair later (a relayed pair can win the race before hole punching succeeds): look a
      // few times and report each change.
      let lastRoute = '';
      // Only while someone listens (the Node CLI and the benchmarks do; the web player does not).
      const askRoute = (i: number): void => {
        if (this.listenerCount('peer-route') === 0) return;
        link.route?.().then(
          (route) => {
            if (this.#destroyed || !n.open) return;
            if (route && route.local !== 'unknown' && route.remote !== 'unknown') {
              const key = `${route.local}/${route.remote}/${route.relayed}`;
              if (key !== lastRoute) {
                const first = lastRoute === '';
                lastRoute = key;
                this.emit('peer-route', { id: remoteId, route, connectMs, first });
              }
            }
            const next = ROUTE_CHECKS_MS[i + 1];
            if (next !== undefined) clock.setTimeout(() => askRoute(i + 1), next - ROUTE_CHECKS_MS[i]!);
            // Still unknown (a busy machine answers stats late): keep looking every 4 s for a minute.
            else if (lastRoute === '' && i < ROUTE_CHECKS_MS.length + 14)
              clock.setTimeout(() => askRoute(i + 1), 4000);
          },
          () => {}, // stats unavailable: the route stays unknown
        );
      };
      askRoute(0);
    });
    n.on('request', (req) => {
      if (this.#destroyed) return;
      this.uploads.enqueue(n, req);
    });
    n.on('cancel', (requestId) => this.uploads.cancel(n, requestId));
    n.on('have', () => this.#scheduleTick(0));
    n.on('close', ({ reason, code }) => {
      clock.clearTimeout(this.#connectTimers.get(remoteId));
      this.#connectTimers.delete(remoteId);
      if (this.neighbours.get(remoteId) === n) this.neighbours.delete(remoteId);
      this.uploads.forget(n);
      this.emit('peer-closed', { id: remoteId, reason, ...(code && { code }) });
      // A fault we saw ourselves is reported to the tracker (once per peer), which stops introducing
      // a peer several of its neighbours complained about.
      if (isComplaint(code) && !this.#reported.has(remoteId, clock.now())) {
        this.#reported.ban(remoteId, Infinity);
        tracker?.reportPeer(remoteId, code);
      }
      // A neighbour that broke the protocol, sent bad data or went over its budget is not dialled
      // again (for a while); others are retried a few times (the initiator of the pair dials).
      if (code && code !== 'peer-timeout') {
        const ms = code === 'peer-unresponsive' ? this.opts.unresponsiveBanMs : this.opts.banMs;
        this.#banned.ban(remoteId, clock.now() + ms);
      } else this.#redial(remoteId);
      this.#scheduleTick(0);
    });
    return n;
  }

  // ------------------------------------------------------------------ playlist and attestations

  async #pollPlaylist(): Promise<void> {
    if (this.#destroyed) return;
    const url = this.#mediaPlaylistUrl;
    const rendition = this.rendition;
    try {
      const pl = parseMediaPlaylist(await this.#getText(url), url);
      if (this.#destroyed || rendition !== this.rendition) return;
      for (const s of pl.segments)
        if (!this.known.has(s.mediaSequence))
          this.known.set(s.mediaSequence, {
            rendition,
            mediaSequence: s.mediaSequence,
            discontinuitySequence: s.discontinuitySequence,
            durationS: s.durationS,
            url: s.url,
            gap: s.gap,
          });
      const seqs = [...this.known.keys()].sort((a, b) => a - b);
      const newest = seqs.at(-1) ?? -1;
      // A live window slides; a recording's playlist is kept whole.
      if (!pl.ended) {
        const oldest = newest - 3 * this.opts.keepSegments;
        for (const s of seqs) if (s < oldest) this.known.delete(s);
        // Records of segments that left the live window are not needed any more (any rendition).
        for (const [k, att] of this.#attestations)
          if (att.mediaSequence < oldest) this.#attestations.delete(k);
      }
      this.newestPublished = Math.max(this.newestPublished, newest);
      this.ended = pl.ended;
      this.#d.store.setWindow(rendition, Math.max(0, newest - this.opts.keepSegments));
      this.emit('playlist', { newest, oldest: seqs[0] ?? -1, ended: pl.ended });
      this.#scheduleTick(0);
      const targetMs = Math.max(250, (pl.targetDurationS * 1000) / 2);
      if (!pl.ended)
        this.#playlistTimer = this.#d.clock.setTimeout(() => void this.#pollPlaylist(), targetMs);
    } catch (err) {
      this.emit('error', { code: 'origin-unavailable', message: `playlist: ${(err as Error).message}` });
      this.#playlistTimer = this.#d.clock.setTimeout(() => void this.#pollPlaylist(), 1000);
    }
  }

  /** A record pushed by the tracker: kept only once its signature checks out with the channel key. */
  #onAttestation(att: Attestation): void {
    if (att.channel !== this.opts.channel || !this.#key) return;
    const key = segmentKey(att);
    if (this.#attestations.has(key)) return;
    void this.#verifyRecord(att, att).then((ok) => {
      if (!ok || this.#destroyed || this.#attestations.has(key)) return;
      this.#attestations.set(key, att);
      // Bytes that were waiting for this record can be checked now.
      const heldKey = `${att.rendition}/${att.mediaSequence}`;
      if (this.#unverified.has(heldKey)) void this.#retryAttestation(heldKey);
      if (att.rendition === this.rendition) {
        this.newestPublished = Math.max(this.newestPublished, att.mediaSequence);
        // A first-tier peer fetches a fresh segment as soon as it is published.
        if (this.firstTier) this.#scheduleTick(0);
      }
    });
  }

  async #verifyRecord(att: Attestation, id: { rendition: string; mediaSequence: number }): Promise<boolean> {
    const about = checkAttestationFor(att, { channel: this.opts.channel, ...id });
    const signed = about.ok ? await verifyAttestationSignature(att, this.#key!) : about;
    if (!signed.ok)
      this.emit('segment-rejected', {
        rendition: id.rendition,
        mediaSequence: id.mediaSequence,
        reason: signed.code,
      });
    return signed.ok;
  }

  /**
   * The attestation of a segment, verified: pushed by the tracker or fetched from the origin. Only
   * records whose signature checked out are ever kept.
   */
  async #attestation(rendition: string, seq: number): Promise<Attestation | undefined> {
    const key = segmentKey({ channel: this.opts.channel, rendition, mediaSequence: seq });
    const known = this.#attestations.get(key);
    if (known) return known;
    let pending = this.#attestationFetches.get(key);
    if (!pending) {
      pending = this.#getJson(this.#segmentUrl(rendition, seq).replace(/\.ts$/, '.json'))
        .then(async (json) => {
          const parsed = parseAttestation(json);
          if (!parsed.ok) return undefined;
          return (await this.#verifyRecord(parsed.attestation, { rendition, mediaSequence: seq }))
            ? parsed.attestation
            : undefined;
        })
        .catch(() => undefined)
        .finally(() => this.#attestationFetches.delete(key));
      this.#attestationFetches.set(key, pending);
    }
    const att = await pending;
    if (att && !this.#attestations.has(key)) this.#attestations.set(key, att);
    return this.#attestations.get(key);
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
    const held = this.#d.store.get(rendition, mediaSequence);
    if (held) return Promise.resolve({ bytes: held.bytes, source: 'cache', attestation: held.attestation });
    const key = `${rendition}/${mediaSequence}`;
    let demand = this.#demands.get(key);
    if (!demand) {
      demand = { rendition, mediaSequence, deadlineAt, createdAt: this.#d.clock.now(), waiters: [] };
      this.#demands.set(key, demand);
    }
    demand.deadlineAt = Math.min(demand.deadlineAt, deadlineAt);
    const p = new Promise<LoadResult>((resolve, reject) => demand!.waiters.push({ resolve, reject }));
    this.#scheduleTick(0);
    return p;
  }

  /** Switches the rendition this peer fetches and shares (new neighbours from the tracker). */
  setRendition(name: string): void {
    if (!this.#variantUrls.has(name)) return;
    this.#renditionSet = true;
    if (name === this.rendition) return this.#scheduleTick(0);
    this.rendition = name;
    this.#mediaPlaylistUrl = this.#variantUrls.get(name)!;
    this.known.clear();
    this.#d.clock.clearTimeout(this.#playlistTimer);
    void this.#pollPlaylist();
    this.#sendReport();
    this.emit('rendition-changed', name);
  }

  #scheduleTick(delayMs = this.opts.schedulerTickMs): void {
    if (this.#destroyed) return;
    if (delayMs > 0 && this.#tickTimer !== undefined) return;
    this.#d.clock.clearTimeout(this.#tickTimer);
    this.#tickTimer = this.#d.clock.setTimeout(() => {
      this.#tickTimer = undefined;
      this.#tick();
      // Ticking on is needed only while a demand waits (deadlines and P2P progress are watched);
      // otherwise the events that can change a decision (a playlist, an attestation, a neighbour's
      // `have`, a link closing, a new demand) schedule the next round themselves.
      if (this.#demands.size > 0) this.#scheduleTick();
    }, delayMs);
  }

  /** One scheduling round. */
  #tick(): void {
    if (this.#destroyed || !this.#key) return;
    const now = this.#d.clock.now();
    // First tier: pull fresh segments of our rendition from the origin as soon as they exist.
    if (
      this.firstTier &&
      this.newestPublished >= 0 &&
      (this.#renditionSet || !this.opts.followPlayerRendition)
    ) {
      for (let seq = Math.max(0, this.newestPublished - 1); seq <= this.newestPublished; seq++) {
        const k = this.known.get(seq);
        if (k?.gap) continue;
        const key = `${this.rendition}/${seq}`;
        if (!this.#d.store.has(this.rendition, seq) && !this.#fetches.has(key) && !this.#unverified.has(key))
          this.#startHttp(this.rendition, seq);
      }
    }
    for (const [key, demand] of this.#demands) {
      const { rendition, mediaSequence: seq } = demand;
      const fetch = this.#fetches.get(key);
      const timeLeft = demand.deadlineAt - now;
      const size = this.#expectedSize(rendition, seq);
      // Its bytes are here, waiting for their attestation: fetching them again would not help.
      if (fetch?.via === 'http' || this.#unverified.has(key)) continue;
      if (fetch?.via === 'p2p') {
        const d = fetch.download!;
        const stalled = now - d.lastProgressAt > this.opts.p2pStallMs;
        const rate =
          d.firstByteAt !== undefined && now > d.firstByteAt
            ? (d.received * 1000) / (now - d.firstByteAt)
            : fetch.neighbour!.throughput.value;
        const remaining = (d.totalBytes ?? size) - d.received;
        const late =
          now + (remaining / Math.max(1, rate)) * 1000 > demand.deadlineAt - this.opts.safetyMarginMs / 2;
        const httpNeedsMs = this.#httpEstimateMs(size) + this.opts.safetyMarginMs;
        if (stalled || (late && timeLeft < httpNeedsMs * 2)) {
          const n = fetch.neighbour!;
          const why = stalled ? 'stalled' : 'too slow';
          n.cancel(d, why);
          this.#fetches.delete(key);
          this.#startHttp(rendition, seq);
          this.emit('p2p-late', { rendition, mediaSequence: seq, why, from: n.id });
          // Demoted for a while; a few failures in a row close the link (peer-unresponsive). Too slow
          // for this deadline is held against the neighbour only if it did not even keep up with the
          // stream (dripping); our own link may be the limit otherwise.
          const achievedBps = (d.received * 1000) / Math.max(1, now - d.startedAt);
          if (stalled || achievedBps < this.ladder.topBitrateBps() / 8) n.failed(why);
        }
        continue;
      }
      // Not in flight: P2P if a neighbour holds it and can deliver in time, else HTTP when time is short.
      const best = this.opts.p2p ? this.#bestHolder(rendition, seq, size, demand.deadlineAt) : undefined;
      if (best && now + best.etaMs + this.opts.safetyMarginMs < demand.deadlineAt) {
        this.#startP2p(best.neighbour, rendition, seq, demand.deadlineAt);
        continue;
      }
      const httpNeedsMs = this.#httpEstimateMs(size) + this.opts.safetyMarginMs;
      // Waiting is worth it only while someone may still get it to us in time.
      const mayArrive = this.opts.p2p && this.neighbours.size > 0 && !this.firstTier;
      if (!mayArrive || timeLeft <= httpNeedsMs + this.opts.safetyMarginMs) {
        if (now - demand.createdAt > this.opts.schedulerTickMs) demand.waitedForP2p = mayArrive;
        this.#startHttp(rendition, seq);
      }
    }
  }

  #expectedSize(rendition: string, seq: number): number {
    const att = this.#attestations.get(
      segmentKey({ channel: this.opts.channel, rendition, mediaSequence: seq }),
    );
    if (att) return att.byteLength;
    const v = this.variants.find((x) => x.name === rendition);
    const dur = this.known.get(seq)?.durationS ?? this.channelInfo?.segmentDurationS ?? 2;
    return v ? (v.bandwidthBps / 8) * dur : 1_000_000;
  }

  #httpEstimateMs(size: number): number {
    return this.httpFirstByteMs.value + (size / Math.max(1, this.httpThroughput.value)) * 1000;
  }

  /**
   * The neighbour to ask for a segment: of those that hold it and can deliver it before `deadlineAt`
   * with the safety margin, the one we have taken least from (fewest transfers in flight, then fewest
   * bytes so far), so that requests spread over every holder rather than all going to the fastest
   * one (the first tier would upload for everyone). None can make it: the fastest, for the caller to
   * judge.
   */
  #bestHolder(
    rendition: string,
    seq: number,
    size: number,
    deadlineAt: number,
  ): { neighbour: Neighbour; etaMs: number } | undefined {
    const now = this.#d.clock.now();
    let fastest: { neighbour: Neighbour; etaMs: number } | undefined;
    let spread: { neighbour: Neighbour; etaMs: number; load: number } | undefined;
    for (const n of this.neighbours.values()) {
      if (
        !n.open ||
        !n.holdsSegment(rendition, seq) ||
        n.downloads.size >= 2 ||
        n.busyUntil > now ||
        n.demoted
      )
        continue;
      const etaMs =
        n.firstByteMs.value + (size / Math.max(1, n.throughput.value)) * 1000 * (1 + n.downloads.size);
      if (!fastest || etaMs < fastest.etaMs) fastest = { neighbour: n, etaMs };
      if (now + etaMs + this.opts.safetyMarginMs >= deadlineAt) continue;
      const load = n.downloads.size * 1e12 + (this.receivedFrom[n.id] ?? 0);
      if (!spread || load < spread.load || (load === spread.load && etaMs < spread.etaMs))
        spread = { neighbour: n, etaMs, load };
    }
    return spread ?? fastest;
  }

  #startP2p(n: Neighbour, rendition: string, seq: number, deadlineAt: number): void {
    const key = `${rendition}/${seq}`;
    const att = this.#attestations.get(
      segmentKey({ channel: this.opts.channel, rendition, mediaSequence: seq }),
    );
    const d = n.request(rendition, seq, deadlineAt - this.#d.clock.now(), att?.byteLength);
    const fetch: Fetch = {
      rendition,
      mediaSequence: seq,
      via: 'p2p',
      startedAt: this.#d.clock.now(),
      neighbour: n,
      download: d,
    };
    this.#fetches.set(key, fetch);
    d.promise.then(
      (bytes) => void this.#onBytes(fetch, bytes),
      (err: Error) => {
        if (this.#fetches.get(key) !== fetch) return;
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
    const key = `${rendition}/${seq}`;
    const abort = new AbortController();
    const fetch: Fetch = {
      rendition,
      mediaSequence: seq,
      via: 'http',
      startedAt: this.#d.clock.now(),
      abort,
    };
    this.#fetches.set(key, fetch);
    let firstByteAt: number | undefined;
    this.#d.http
      .get(this.#segmentUrl(rendition, seq), {
        signal: abort.signal,
        onProgress: () => (firstByteAt ??= this.#d.clock.now()),
      })
      .then((res) => {
        if (res.status !== 200)
          throw new EngineError('origin-unavailable', `segment ${key}: HTTP ${res.status}`);
        const now = this.#d.clock.now();
        if (firstByteAt !== undefined) this.httpFirstByteMs.add(firstByteAt - fetch.startedAt);
        if (res.bytes.byteLength > 32 * 1024)
          this.httpThroughput.add(
            res.bytes.byteLength / Math.max(0.001, (now - (firstByteAt ?? fetch.startedAt)) / 1000),
          );
        return this.#onBytes(fetch, res.bytes);
      })
      .catch((err: Error) => {
        if (this.#fetches.get(key) === fetch) this.#fetches.delete(key);
        if (this.#destroyed || abort.signal.aborted) return; // dropped on purpose
        this.emit('error', { code: 'origin-unavailable', message: err.message });
        // Retry soon; a demand past its deadline is still wanted (the player is stalled on it).
        this.#d.clock.setTimeout(() => this.#scheduleTick(0), 300);
      });
  }

  async #onBytes(fetch: Fetch, bytes: Uint8Array): Promise<void> {
    const { rendition, mediaSequence: seq } = fetch;
    const key = `${rendition}/${seq}`;
    const att = await this.#attestation(rendition, seq);
    if (this.#destroyed || this.#fetches.get(key) !== fetch) return;
    this.#fetches.delete(key);
    if (!att) {
      // Cannot be checked yet (origin down, no push yet): hold the bytes and fetch the record again
      // with backoff; the sender is not blamed, and the segment is not downloaded again meanwhile.
      if (!this.#d.store.has(rendition, seq)) this.#unverified.hold(key, fetch, bytes);
      return;
    }
    await this.#accept(fetch, bytes, att);
  }

  /** Fetches the attestation of held bytes again; checks and delivers them once it is known. */
  async #retryAttestation(key: string, fetch?: Fetch): Promise<void> {
    const f = fetch ?? this.#unverified.peek(key);
    if (!f) return;
    const att = await this.#attestation(f.rendition, f.mediaSequence);
    if (this.#destroyed || !att) return;
    const held = this.#unverified.take(key);
    if (!held || this.#d.store.has(f.rendition, f.mediaSequence)) return;
    // Bytes let go meanwhile: fetch the segment again, now that it can be checked.
    if (!held.bytes) return this.#scheduleTick(0);
    await this.#accept(held.meta, held.bytes, att);
  }

  /** Checks bytes against their attestation; stores and delivers them, or rejects them. */
  async #accept(fetch: Fetch, bytes: Uint8Array, att: Attestation): Promise<void> {
    const { rendition, mediaSequence: seq } = fetch;
    const key = `${rendition}/${seq}`;
    const from = fetch.neighbour?.id;
    const check = await checkSegmentBytes(att, bytes);
    if (this.#destroyed) return;
    if (!check.ok) {
      const reason = check.code;
      this.emit('segment-rejected', { rendition, mediaSequence: seq, reason, ...(from && { from }) });
      // Drop the bytes; a neighbour that sent bad data is cut off; fetch again from the origin.
      if (fetch.neighbour) fetch.neighbour.close('peer-sent-bad-segment', `${key}: ${reason}`);
      if (this.#fetches.has(key)) return;
      if (fetch.via === 'p2p') this.#startHttp(rendition, seq);
      else this.#d.clock.setTimeout(() => this.#scheduleTick(0), 500);
      return;
    }
    const ms = this.#d.clock.now() - fetch.startedAt;
    const now = this.#d.clock.now();
    this.downloadRate.add(now, bytes.byteLength);
    if (fetch.via === 'http') this.httpBytes += bytes.byteLength;
    else {
      this.p2pBytes += bytes.byteLength;
      this.receivedFrom[from!] = (this.receivedFrom[from!] ?? 0) + bytes.byteLength;
    }
    this.#d.store.put(rendition, seq, bytes, att);
    const demand = this.#demands.get(key);
    const late = demand !== undefined && now > demand.deadlineAt;
    this.emit('segment-loaded', {
      rendition,
      mediaSequence: seq,
      source: fetch.via,
      bytes: bytes.byteLength,
      ms,
      late,
      ...(from && { from }),
    });
    if (late && (fetch.via === 'p2p' || demand.waitedForP2p))
      this.emit('p2p-late', {
        rendition,
        mediaSequence: seq,
        why: fetch.via === 'p2p' ? 'after deadline' : 'waited',
        ...(from && { from }),
      });
    if (demand) {
      this.#demands.delete(key);
      for (const w of demand.waiters) w.resolve({ bytes, source: fetch.via, attestation: att });
    }
  }

  /** True when a verified segment is held (fetched and kept for neighbours). */
  hasSegment(rendition: string, mediaSequence: number): boolean {
    return this.#d.store.has(rendition, mediaSequence);
  }

  /** Gives up a demand (the player moved on). */
  drop(rendition: string, mediaSequence: number): void {
    const key = `${rendition}/${mediaSequence}`;
    const demand = this.#demands.get(key);
    if (!demand) return;
    this.#demands.delete(key);
    for (const w of demand.waiters) w.reject(new EngineError('dropped', 'no longer needed'));
    const f = this.#fetches.get(key);
    if (f?.via === 'p2p') f.neighbour!.cancel(f.download!, 'dropped');
    if (f) this.#fetches.delete(key);
    f?.abort?.abort();
  }

  // ------------------------------------------------------------------ reports and stats

  #scheduleReport(): void {
    this.#d.clock.clearTimeout(this.#reportTimer);
    this.#reportTimer = this.#d.clock.setTimeout(() => {
      this.#sendReport();
      this.#scheduleReport();
    }, this.#reportIntervalMs);
  }

  #sendReport(): void {
    const tracker = this.#d.tracker;
    if (!tracker || !this.peerId || this.#destroyed) return;
    const held = this.#d.store.heldRanges(this.rendition);
    const playback = this.#playbackProbe();
    const neighbours = [...this.neighbours.values()].filter((n) => n.open).map((n) => n.id);
    const receivedFrom: Record<string, number> = {};
    for (const id of neighbours) if (this.receivedFrom[id]) receivedFrom[id] = this.receivedFrom[id]!;
    const report: PeerReport = {
      rendition: this.rendition,
      bufferS: Math.min(3600, Math.max(0, playback.bufferS)),
      held: held.length > 0 ? { first: held[0]![0], last: held.at(-1)![1] } : null,
      uploadKbps: Math.round(
        this.uploads.measuredCapacityKbps() || this.opts.uploadCapKbps || this.opts.declaredUploadKbps,
      ),
      downloadKbps: Math.round((this.downloadRate.rate(this.#d.clock.now()) * 8) / 1000),
      httpBytes: this.httpBytes,
      p2pBytes: this.p2pBytes,
      uploadedBytes: this.uploads.uploadedBytes,
      neighbours: neighbours.slice(0, 64),
      receivedFrom,
      stalls: playback.stalls,
    };
    tracker.report(report);
  }

  stats() {
    return {
      peerId: this.peerId,
      rendition: this.rendition,
      firstTier: this.firstTier,
      httpBytes: this.httpBytes,
      p2pBytes: this.p2pBytes,
      uploadedBytes: this.uploads.uploadedBytes,
      peers: [...this.neighbours.values()].filter((n) => n.open).length,
      downloadKbps: (this.downloadRate.rate(this.#d.clock.now()) * 8) / 1000,
      uploadKbps: this.uploads.currentRateKbps(),
    };
  }

  // ------------------------------------------------------------------ helpers

  async #getText(url: string): Promise<string> {
    const res = await this.#d.http.get(url);
    if (res.status !== 200) throw new EngineError('origin-unavailable', `${url}: HTTP ${res.status}`);
    return new TextDecoder().decode(res.bytes);
  }

  async #getJson(url: string): Promise<unknown> {
    return JSON.parse(await this.#getText(url)) as unknown;
  }

  /** Leaves the tracker, closes every link, cancels every fetch. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const { clock } = this.#d;
    this.#joinEpoch++;
    for (const t of [
      this.#playlistTimer,
      this.#tickTimer,
      this.#reportTimer,
      this.#joinRetryTimer,
      ...this.#connectTimers.values(),
    ])
      clock.clearTimeout(t);
    this.#unverified.destroy();
    for (const f of this.#fetches.values()) {
      f.abort?.abort();
      if (f.download) f.neighbour?.cancel(f.download, 'destroyed');
    }
    this.#fetches.clear();
    for (const d of this.#demands.values())
      for (const w of d.waiters) w.reject(new EngineError('destroyed', 'engine destroyed'));
    this.#demands.clear();
    for (const n of this.neighbours.values()) n.close('bye', 'leaving');
    this.neighbours.clear();
    this.uploads.destroy();
    this.#d.tracker?.leave();
    for (const u of this.#unsubscribe) u();
    this.removeAllListeners();
  }
}
