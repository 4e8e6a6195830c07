/**
 * The simulated source: publishes a live channel on the virtual clock, as `source/` does with ffmpeg:
 * one segment per rendition every segment duration, media sequences from 0, attestation records in the
 * real format (signed with the simulator's tag, see integrity.ts), a live media playlist over a sliding
 * window, and an optional end (EXT-X-ENDLIST). sim/origin.ts serves it.
 *
 * Size model: a segment of rendition r is `averageBandwidthBps(r) × duration / 8` bytes (the AVERAGE-
 * BANDWIDTH the master playlist declares: video + audio + 8 % MPEG-TS overhead) times a factor drawn per
 * segment from a log-normal of mean 1 and log-sd `sizeSigma` (default 0.12, about ±12 %: x264 in
 * capped-CRF/CBR-like mode with a VBV keeps 2 s segments within roughly that of the target). One factor
 * per segment, shared by every rendition (the scene's complexity shows in all of them).
 *
 * Payloads: one buffer per segment and rendition, its first bytes the content tag, then zeros; everyone
 * who fetches it from the origin gets that same buffer (no copy: callers must not mutate it). With
 * `byteScale` < 1 every payload is that much shorter and the record says so (the engine sees consistent
 * sizes): every capacity of the simulated world (origin egress, peers' upload and download) must then
 * be scaled by the same factor, so that times stay those of the full-size stream. Bitrates in the
 * playlists stay the real ones.
 */
import {
  GENESIS_HASH,
  TypedEmitter,
  ATTESTATION_VERSION,
  isChannelId,
  type Attestation,
  type AttestationBody,
} from '../protocol/index.ts';
import {
  averageBandwidthBps,
  DEFAULT_CHANNEL,
  DEFAULT_LADDER,
  LIGHT_LADDER,
  masterPlaylist,
  mediaPlaylist,
  validateLadder,
  type Entry,
  type Rendition,
} from '../source/index.ts';
import type { Clock, TimerHandle } from '../peer/index.ts';
import {
  simPayload,
  simPublicKey,
  simRecordHash,
  simSegmentHash,
  simSign,
  SIM_TAG_BYTES,
} from './integrity.ts';
import type { Rng } from './rng.ts';

/** The simulator's named ladders: the product's default, and the benchmarks' `--light` one. */
export const SIM_LADDERS = { default: DEFAULT_LADDER, light: LIGHT_LADDER } as const;

export interface SimSourceOptions {
  channel: string;
  title: string;
  /** A named ladder or the renditions themselves. */
  ladder: keyof typeof SIM_LADDERS | readonly Rendition[];
  segmentDurationS: number;
  /** Frame rate written in the master playlist. */
  fps: number;
  hasAudio: boolean;
  /** Segments listed in a live media playlist (the origin's playlistWindow). */
  playlistWindow: number;
  /**
   * Segments kept (and served) per rendition, newest first; older ones are forgotten (404). The real
   * origin keeps everything on disk; this bounds the simulator's memory (players jump to the live edge
   * long before). At least `playlistWindow`.
   */
  retainSegments: number;
  /** Log-sd of the per-segment size factor (log-normal, mean 1); 0: every segment at its bitrate. */
  sizeSigma: number;
  /** Payload lengths are multiplied by this (0 < byteScale ≤ 1); capacities must be scaled alike. */
  byteScale: number;
  /** Ends the broadcast (ENDLIST) after this many segments; undefined: live until `end()`. */
  endAfterSegments: number | undefined;
}

export const DEFAULT_SIM_SOURCE: SimSourceOptions = {
  channel: 'sim',
  title: 'Simulated channel',
  ladder: 'default',
  segmentDurationS: DEFAULT_CHANNEL.segmentDurationS,
  fps: DEFAULT_CHANNEL.fps,
  hasAudio: true,
  playlistWindow: DEFAULT_CHANNEL.playlistWindow,
  retainSegments: 30,
  sizeSigma: 0.12,
  byteScale: 1,
  endAfterSegments: undefined,
};

/** One published segment of one rendition. */
export interface SimSegment {
  readonly attestation: Attestation;
  /** The payload (shared by every fetch: do not mutate). */
  readonly payload: Uint8Array;
}

export type SimSourceStatus = 'idle' | 'live' | 'ended';

export type SimSourceEvents = {
  /** A segment of every rendition was published (records in ladder order). */
  published: (records: Attestation[]) => void;
  ended: () => void;
};

const encoder = new TextEncoder();

export class SimSource extends TypedEmitter<SimSourceEvents> {
  readonly opts: SimSourceOptions;
  readonly ladder: readonly Rendition[];
  readonly publicKey: string;
  /** Payload bytes published, all renditions (scaled). */
  bytesPublished = 0;
  readonly #clock: Clock;
  readonly #rng: Rng;
  readonly #segments = new Map<string, Map<number, SimSegment>>();
  readonly #prev = new Map<string, AttestationBody>();
  readonly #json = new WeakMap<SimSegment, Uint8Array>();
  readonly #playlists = new Map<string, Uint8Array>();
  #master: Uint8Array | undefined;
  #status: SimSourceStatus = 'idle';
  #newest = -1;
  #startAt = 0;
  #timer: TimerHandle | undefined;
  #destroyed = false;

  /** `rng`: the run's generator (the source draws from its own fork). */
  constructor(clock: Clock, rng: Rng, opts: Partial<SimSourceOptions> = {}) {
    super();
    const o: SimSourceOptions = { ...DEFAULT_SIM_SOURCE, ...opts };
    if (!isChannelId(o.channel)) throw new RangeError(`SimSource: invalid channel id ${o.channel}`);
    this.ladder = typeof o.ladder === 'string' ? SIM_LADDERS[o.ladder] : o.ladder;
    if (!this.ladder) throw new RangeError(`SimSource: unknown ladder ${String(o.ladder)}`);
    validateLadder(this.ladder);
    if (!(o.segmentDurationS > 0)) throw new RangeError('SimSource: segmentDurationS must be > 0');
    if (!(o.byteScale > 0 && o.byteScale <= 1))
      throw new RangeError('SimSource: byteScale must be in (0, 1]');
    if (!(o.sizeSigma >= 0)) throw new RangeError('SimSource: sizeSigma must be ≥ 0');
    if (!Number.isInteger(o.playlistWindow) || o.playlistWindow < 1)
      throw new RangeError('SimSource: playlistWindow must be an integer ≥ 1');
    if (!Number.isInteger(o.retainSegments) || o.retainSegments < o.playlistWindow)
      throw new RangeError('SimSource: retainSegments must be an integer ≥ playlistWindow');
    if (
      o.endAfterSegments !== undefined &&
      !(Number.isInteger(o.endAfterSegments) && o.endAfterSegments >= 1)
    )
      throw new RangeError('SimSource: endAfterSegments must be an integer ≥ 1');
    this.opts = o;
    this.#clock = clock;
    this.#rng = rng.fork(`source/${o.channel}`);
    this.publicKey = simPublicKey(o.channel);
    for (const r of this.ladder) this.#segments.set(r.name, new Map());
  }

  get channel(): string {
    return this.opts.channel;
  }

  get status(): SimSourceStatus {
    return this.#status;
  }

  get ended(): boolean {
    return this.#status === 'ended';
  }

  get segmentDurationMs(): number {
    return this.opts.segmentDurationS * 1000;
  }

  /** Newest published media sequence (-1 before any). */
  get newest(): number {
    return this.#newest;
  }

  /** Oldest media sequence still served (-1 before any). */
  get oldest(): number {
    return this.#newest < 0 ? -1 : Math.max(0, this.#newest - this.opts.retainSegments + 1);
  }

  /** Expected (unscaled, before variation) size of a segment of `rendition`, bytes. */
  nominalSegmentBytes(rendition: Rendition): number {
    return (averageBandwidthBps(rendition, this.opts.hasAudio) * this.opts.segmentDurationS) / 8;
  }

  /** Starts publishing: the first segment one duration from now, then one every duration. */
  start(): void {
    if (this.#destroyed) throw new Error('SimSource: destroyed');
    if (this.#status !== 'idle') throw new Error('SimSource: already started');
    this.#status = 'live';
    this.#startAt = this.#clock.now();
    this.#arm();
  }

  /** Ends the broadcast now: no more segments, playlists get EXT-X-ENDLIST. Idempotent. */
  end(): void {
    if (this.#status === 'ended') return;
    this.#status = 'ended';
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#playlists.clear();
    this.emit('ended');
  }

  /** Stops the clock's timer (the published segments stay readable). Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  segment(rendition: string, mediaSequence: number): SimSegment | undefined {
    return this.#segments.get(rendition)?.get(mediaSequence);
  }

  /** Records of `rendition` from `from` to `to` (inclusive) still held, ascending. */
  records(rendition: string, from: number, to: number): Attestation[] {
    const map = this.#segments.get(rendition);
    const out: Attestation[] = [];
    if (!map) return out;
    for (let seq = Math.max(from, this.oldest); seq <= Math.min(to, this.#newest); seq++) {
      const s = map.get(seq);
      if (s) out.push(s.attestation);
    }
    return out;
  }

  /** A segment's record as the origin serves it (JSON, UTF-8; encoded once). */
  recordJson(segment: SimSegment): Uint8Array {
    let bytes = this.#json.get(segment);
    if (!bytes) this.#json.set(segment, (bytes = encoder.encode(JSON.stringify(segment.attestation))));
    return bytes;
  }

  /** The master playlist (relative URIs `<r>.m3u8`), as the origin writes it. */
  masterPlaylist(): Uint8Array {
    this.#master ??= encoder.encode(
      masterPlaylist({
        // Bitrates scaled like the payloads, so every byte-based decision of the engine (expected
        // sizes, upload allowances in multiples of the top bitrate) stays what it is at full scale.
        ladder: this.ladder.map((r) => ({
          ...r,
          videoKbps: r.videoKbps * this.opts.byteScale,
          audioKbps: r.audioKbps * this.opts.byteScale,
        })),
        fps: this.opts.fps,
        hasAudio: this.opts.hasAudio,
        uri: (r) => `${r}.m3u8`,
      }),
    );
    return this.#master;
  }

  /**
   * The live media playlist of a rendition over the sliding window, as the origin writes it; undefined
   * for an unknown rendition or before the first segment. Rendered once per publication.
   */
  mediaPlaylist(
    rendition: string,
    segmentUri: (rendition: string, seq: number) => string,
  ): Uint8Array | undefined {
    const map = this.#segments.get(rendition);
    if (!map || this.#newest < 0) return undefined;
    let bytes = this.#playlists.get(rendition);
    if (bytes) return bytes;
    const entries: Entry[] = [];
    for (let seq = Math.max(0, this.#newest - this.opts.playlistWindow + 1); seq <= this.#newest; seq++) {
      const s = map.get(seq);
      if (s) entries.push({ kind: 'segment', attestation: s.attestation });
    }
    bytes = encoder.encode(
      mediaPlaylist({
        entries,
        segmentDurationS: this.opts.segmentDurationS,
        uri: (seq) => segmentUri(rendition, seq),
        ended: this.ended,
        vod: false,
      }),
    );
    this.#playlists.set(rendition, bytes);
    return bytes;
  }

  #arm(): void {
    const dueAt = this.#startAt + (this.#newest + 2) * this.segmentDurationMs;
    this.#timer = this.#clock.setTimeout(() => this.#publish(), dueAt - this.#clock.now());
  }

  #publish(): void {
    if (this.#destroyed || this.#status !== 'live') return;
    const seq = this.#newest + 1;
    const durationMs = Math.round(this.segmentDurationMs);
    const factor =
      this.opts.sizeSigma > 0 ? this.#rng.logNormal(-(this.opts.sizeSigma ** 2) / 2, this.opts.sizeSigma) : 1;
    const publishedAtMs = Math.round(this.#clock.wallNow());
    const records: Attestation[] = [];
    for (const r of this.ladder) {
      const id = {
        channel: this.opts.channel,
        rendition: r.name,
        mediaSequence: seq,
        discontinuitySequence: 0,
      };
      const byteLength = Math.max(
        SIM_TAG_BYTES,
        Math.round(this.nominalSegmentBytes(r) * factor * this.opts.byteScale),
      );
      const sha256 = simSegmentHash(id, byteLength);
      const prev = this.#prev.get(r.name);
      const body: AttestationBody = {
        v: ATTESTATION_VERSION,
        ...id,
        byteLength,
        durationMs,
        sha256,
        prevHash: prev ? simRecordHash(prev) : GENESIS_HASH,
        publishedAtMs,
      };
      const attestation: Attestation = { ...body, signature: simSign(body, this.publicKey) };
      this.#prev.set(r.name, body);
      const map = this.#segments.get(r.name)!;
      map.set(seq, { attestation, payload: simPayload(sha256, byteLength) });
      map.delete(seq - this.opts.retainSegments);
      this.bytesPublished += byteLength;
      records.push(attestation);
    }
    this.#newest = seq;
    this.#playlists.clear();
    this.emit('published', records);
    if (this.opts.endAfterSegments !== undefined && seq + 1 >= this.opts.endAfterSegments) this.end();
    else if (this.#status === 'live') this.#arm();
  }
}
