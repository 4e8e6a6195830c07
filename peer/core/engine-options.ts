/**
 * The engine's contract: options and their defaults, injected dependencies, events, load results and
 * the error type (engine.ts implements it).
 */
import {
  PeerTvError,
  type Attestation,
  type EngineErrorCode,
  type NatType,
  type PeerErrorCode,
  type PeerKind,
  type PeerMode,
  type SegmentRejectReason,
} from '../../protocol/index.ts';
import type { BudgetOptions } from './budget.ts';
import { MIN_THROUGHPUT_SAMPLE_BYTES, PRIOR_HTTP_BPS, PRIOR_NEIGHBOUR_BPS } from './estimators.ts';
import type { SegmentStore } from './segment-store.ts';
import type {
  Clock,
  HttpFetcher,
  Integrity,
  LinkRoute,
  NatProber,
  TrackerConnection,
  Transport,
} from './seams.ts';
import type { UploadOptions } from './upload.ts';

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
   * Relay segments while they arrive (cut-through): neighbours are told a segment is on its way and
   * may ask for it before it is held. False: only held segments are offered (store and forward).
   */
  relay: boolean;
  /**
   * The player picks the rendition (hls.js's ABR) and says so with `setRendition`: until it has, a
   * first-tier peer fetches nothing ahead (it would fetch the tracker's default rendition for no one).
   */
  followPlayerRendition: boolean;
  /** A P2P transfer must be expected to finish this long before its deadline. */
  safetyMarginMs: number;
  /** A P2P transfer without progress for this long is switched to HTTP. */
  p2pStallMs: number;
  /** How long a demand waits for one of the tracker's ranked suppliers (see SchedulerOptions). */
  parentWaitMs: number;
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
  /**
   * A transfer says something about throughput from this many bytes on (below, the time to first byte
   * dominates). The simulator scales it with its payloads, so that scaled runs decide as full-size ones.
   */
  minThroughputSampleBytes: number;
  /** Throughput assumed of a neighbour and of the origin until measured (bytes/s). */
  priorNeighbourBps: number;
  priorHttpBps: number;
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
  relay: true,
  followPlayerRendition: false,
  safetyMarginMs: 700,
  p2pStallMs: 1000,
  parentWaitMs: 1500,
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
  minThroughputSampleBytes: MIN_THROUGHPUT_SAMPLE_BYTES,
  priorNeighbourBps: PRIOR_NEIGHBOUR_BPS,
  priorHttpBps: PRIOR_HTTP_BPS,
};

export interface EngineDeps {
  clock: Clock;
  transport: Transport;
  http: HttpFetcher;
  tracker: TrackerConnection | undefined;
  store: SegmentStore;
  /** Uniform in [0, 1): jitter of retries (default Math.random; tests inject their own). */
  random?: () => number;
  /**
   * How signatures and segment bytes are checked (default `webCryptoIntegrity`, integrity.ts: Ed25519 and
   * SHA-256 through WebCrypto). The simulator injects a cheap deterministic one.
   */
  integrity?: Integrity;
  /**
   * Learns the NAT type after joining when it is `unknown` and the tracker hands out a `natProbe`
   * (browsers: ICE against the two addresses of our STUN server); the type goes into the next report.
   */
  natProber?: NatProber;
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
    reason: SegmentRejectReason;
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
   * Runtime failures with a stable code: 'tracker-unreachable', 'origin-unavailable',
   * 'unknown-channel' (at start, when `originUrl` was given: playback goes on from the origin;
   * without it, `start()` throws it).
   */
  error: (info: { code: EngineErrorCode; message: string }) => void;
};

export interface LoadResult {
  bytes: Uint8Array;
  /** 'cache': it was already held (fetched earlier, e.g. as first tier or for neighbours). */
  source: SegmentSourceKind | 'cache';
  attestation: Attestation;
}

/** What `start()` and `load()` reject with (see ENGINE_ERROR_CODES). */
export class EngineError extends PeerTvError<EngineErrorCode> {}

/** Rejects contradictory or nonsensical options (misuse: throws at once). */
export function checkOptions(o: EngineOptions): void {
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
