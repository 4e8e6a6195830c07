/**
 * Test doubles for the engine's seams that have no real part in a unit test, all on an injected
 * ManualClock:
 *
 * - {@link FakeOrigin}: an {@link HttpFetcher} serving a channel from memory at the origin's URL layout
 *   (`${originUrl}/channels/<ch>/…`, see source/origin.ts), with real signed attestations (a
 *   ChannelStore signs them) and playlists rendered by source's own playlist functions; per-URL latency,
 *   throughput, hangs and failures simulated on the clock; counters of what it served.
 * - {@link FakeTracker}: a tracker hub handing out {@link FakeTrackerConnection}s (the
 *   `TrackerConnection` seam): join acks, introductions, first tier, signaling relay, attestation
 *   pushes, recorded reports. Payloads are validated with protocol/tracker.ts's schemas, as the real
 *   tracker does.
 * - {@link RawPeer}: a remote peer speaking the wire protocol by hand (encodeMessage/decodeMessage) on
 *   a MemoryNetwork, to play honest, broken or malicious neighbours.
 * - {@link Sim}: drives the ManualClock one timer instant at a time and lets promise chains (and
 *   WebCrypto work, which runs off the JS thread) settle between instants.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  decodeMessage,
  encodeMessage,
  joinRequestSchema,
  MAX_CHUNK_BYTES,
  peerReportSchema,
  signalRequestSchema,
  TRACKER_PROTOCOL_VERSION,
  TypedEmitter,
  WIRE_VERSION,
  type Ack,
  type Attestation,
  type ChannelInfo,
  type JoinRequest,
  type JoinResult,
  type PeerComplaintCode,
  type PeerReport,
  type SignalData,
  type TrackerErrorCode,
  type WireMessage,
} from '../../protocol/index.ts';
import type { ManualClock } from '../../peer/core/clock.ts';
import type { MemoryNetwork } from '../../peer/core/memory-transport.ts';
import type {
  Clock,
  HttpFetcher,
  HttpResponse,
  PeerLink,
  TimerHandle,
  TrackerConnection,
  TrackerConnectionEvents,
} from '../../peer/core/seams.ts';
import { peakBandwidthBps, type Rendition } from '../../source/config.ts';
import { masterPlaylist, mediaPlaylist } from '../../source/playlists.ts';
import { ChannelStore } from '../../source/store.ts';

// ---------------------------------------------------------------------------------------------------
// Settling asynchronous work between clock instants

let cryptoInFlight = 0;

/**
 * WebCrypto calls resolve from a worker thread, not from the clock: count them so that {@link settle}
 * can wait until every digest and signature check under way has finished.
 */
function trackWebCrypto(): void {
  const subtle = globalThis.crypto.subtle as unknown as Record<string, unknown> & { __tracked?: boolean };
  if (subtle.__tracked) return;
  subtle.__tracked = true;
  for (const name of ['digest', 'verify', 'sign', 'importKey']) {
    const original = subtle[name] as (...args: unknown[]) => Promise<unknown>;
    const bound = original.bind(globalThis.crypto.subtle);
    subtle[name] = (...args: unknown[]) => {
      cryptoInFlight++;
      const p = bound(...args);
      p.finally(() => cryptoInFlight--).catch(() => {});
      return p;
    };
  }
}
trackWebCrypto();

const immediate = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Runs every pending promise continuation, waiting for WebCrypto work in flight to finish. */
export async function settle(): Promise<void> {
  for (let spins = 0; ; spins++) {
    await immediate();
    if (cryptoInFlight === 0) return;
    if (spins > 1_000_000) throw new Error('settle: WebCrypto work never finished');
  }
}

/** Drives a ManualClock: one timer instant at a time, settling promise chains after each. */
export class Sim {
  constructor(readonly clock: ManualClock) {}

  get now(): number {
    return this.clock.now();
  }

  /** Runs until `now + ms`. */
  async run(ms: number): Promise<void> {
    await this.#runTo(this.clock.now() + ms);
  }

  /** Runs until `cond()` holds (checked after every instant); throws when `maxMs` pass first. */
  async until(cond: () => boolean, maxMs = 60_000, what = 'condition'): Promise<void> {
    const limit = this.clock.now() + maxMs;
    if (!(await this.#runTo(limit, cond)))
      throw new Error(`timed out after ${maxMs} simulated ms waiting for ${what}`);
  }

  /** Runs until `p` settles and returns its value (throws its error, or after `maxMs`). */
  async resolve<T>(p: Promise<T>, maxMs = 60_000, what = 'promise'): Promise<T> {
    let state: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
    p.then(
      (value) => (state = { ok: true, value }),
      (error: unknown) => (state = { ok: false, error }),
    );
    await this.until(() => state !== undefined, maxMs, what);
    const s = state!;
    if (!s.ok) throw s.error;
    return s.value;
  }

  async #runTo(limit: number, cond?: () => boolean): Promise<boolean> {
    for (let steps = 0; ; steps++) {
      await settle();
      if (cond?.()) return true;
      const next = this.clock.nextDueMs();
      if (next === undefined || next > limit) {
        this.clock.advanceTo(limit);
        await settle();
        return cond?.() ?? false;
      }
      if (steps > 5_000_000) throw new Error('Sim: too many steps (a timer loop?)');
      this.clock.advanceTo(next);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Segment bytes

/** Deterministic pseudo-random bytes, different for every (rendition, seq). */
export function segmentBytes(rendition: string, seq: number, size: number): Uint8Array {
  let x = 0x9e3779b9 ^ (seq * 2654435761);
  for (let i = 0; i < rendition.length; i++) x = Math.imul(x ^ rendition.charCodeAt(i), 0x01000193);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function tempDir(prefix = 'peertv-engine-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// ---------------------------------------------------------------------------------------------------
// FakeOrigin

export type OriginByteKind = 'playlist' | 'segment' | 'attestation' | 'metadata';

export interface OriginProfile {
  /** Time to the first byte (ms). */
  latencyMs: number;
  /** Body throughput (bytes per simulated second); Infinity: the whole body at once. */
  bytesPerS: number;
  /** Never answers (only an abort ends the request). */
  hang?: boolean;
  /** Rejects like a network error after the latency. */
  fail?: boolean;
  /** Answers with this status (and an error body) instead of the content. */
  status?: number;
}

export interface OriginRequest {
  url: string;
  kind: OriginByteKind;
  /** Clock time of the request. */
  at: number;
  status: number;
  /** Body bytes delivered so far. */
  bytes: number;
  /** Clock time the whole body was delivered (undefined: not, or not yet). */
  doneAt: number | undefined;
  aborted: boolean;
}

export interface FakeOriginOptions {
  channel: string;
  originUrl: string;
  ladder: Rendition[];
  segmentDurationS: number;
  /** Segments in a live media playlist (sliding window). */
  playlistWindow: number;
  /** Size of every segment, or per segment. */
  segmentBytes: number | ((rendition: string, seq: number) => number);
  /** Default profile of every URL. */
  latencyMs: number;
  bytesPerS: number;
  /** Body chunk size (each chunk is one `onProgress`). */
  chunkBytes: number;
  /** Where the ChannelStore keeps its key and files (default: a fresh temp dir, removed by `close`). */
  dataDir: string | undefined;
}

export const SMALL_LADDER: Rendition[] = [
  { name: '360p', width: 640, height: 360, videoKbps: 300, audioKbps: 48 },
];

export const DEFAULT_FAKE_ORIGIN: FakeOriginOptions = {
  channel: 'chan',
  originUrl: 'http://origin.test',
  ladder: SMALL_LADDER,
  segmentDurationS: 2,
  playlistWindow: 6,
  segmentBytes: 100_000,
  latencyMs: 20,
  bytesPerS: 1_000_000,
  chunkBytes: 16 * 1024,
  dataDir: undefined,
};

interface Profiled {
  match: (url: string) => boolean;
  profile: Partial<OriginProfile>;
}

const enc = new TextEncoder();

/** An origin in memory, with signed segments, at the real origin's URL layout. */
export class FakeOrigin implements HttpFetcher {
  readonly opts: FakeOriginOptions;
  readonly store: ChannelStore;
  /** Every request, in order. */
  readonly requests: OriginRequest[] = [];
  /** Bytes and requests served, per kind (like the real origin's counters). */
  readonly served: Record<OriginByteKind, { bytes: number; requests: number }> = {
    playlist: { bytes: 0, requests: 0 },
    segment: { bytes: 0, requests: 0 },
    attestation: { bytes: 0, requests: 0 },
    metadata: { bytes: 0, requests: 0 },
  };
  ended = false;
  readonly #clock: Clock;
  readonly #ownDir: string | undefined;
  readonly #bytes = new Map<string, Uint8Array>();
  readonly #atts = new Map<string, Attestation>();
  readonly #seqs: number[] = [];
  readonly #profiles: Profiled[] = [];
  #next = 0;
  #liveTimer: TimerHandle | undefined;

  constructor(clock: Clock, opts: Partial<FakeOriginOptions> = {}) {
    this.opts = { ...DEFAULT_FAKE_ORIGIN, ...opts };
    this.#clock = clock;
    const dir = this.opts.dataDir ?? (this.#ownDir = tempDir());
    this.store = new ChannelStore(dir, this.opts.channel);
  }

  get base(): string {
    return `${this.opts.originUrl}/channels/${this.opts.channel}`;
  }

  get publicKey(): string {
    return this.store.signer.publicKey;
  }

  get masterUrl(): string {
    return `${this.base}/live/master.m3u8`;
  }

  segmentUrl(rendition: string, seq: number): string {
    return `${this.base}/segments/${rendition}/${seq}.ts`;
  }

  /** Newest published media sequence (-1 before any). */
  get newest(): number {
    return this.#seqs.at(-1) ?? -1;
  }

  /** Media sequences published, ascending. */
  get published(): readonly number[] {
    return this.#seqs;
  }

  /** Publishes the next segment of every rendition; returns their signed attestations. */
  publish(): Attestation[] {
    const seq = this.#next++;
    const out: Attestation[] = [];
    for (const r of this.opts.ladder) {
      const size =
        typeof this.opts.segmentBytes === 'function'
          ? this.opts.segmentBytes(r.name, seq)
          : this.opts.segmentBytes;
      const bytes = segmentBytes(r.name, seq, size);
      const file = path.join(this.store.dir, `incoming-${r.name}-${seq}.ts`);
      fs.writeFileSync(file, bytes);
      const att = this.store.publishSegment({
        rendition: r.name,
        mediaSequence: seq,
        discontinuitySequence: 0,
        durationMs: this.opts.segmentDurationS * 1000,
        file,
      });
      this.#bytes.set(`${r.name}/${seq}`, bytes);
      this.#atts.set(`${r.name}/${seq}`, att);
      out.push(att);
    }
    this.#seqs.push(seq);
    return out;
  }

  /** Publishes `n` segments at once. */
  publishMany(n: number): Attestation[] {
    const out: Attestation[] = [];
    for (let i = 0; i < n; i++) out.push(...this.publish());
    return out;
  }

  /** Publishes a segment every `everyMs` of clock time (default: the segment duration) until `stopLive`. */
  startLive(onPublish?: (atts: Attestation[]) => void, everyMs = this.opts.segmentDurationS * 1000): void {
    this.stopLive();
    const tick = () => {
      const atts = this.publish();
      onPublish?.(atts);
      this.#liveTimer = this.#clock.setTimeout(tick, everyMs);
    };
    this.#liveTimer = this.#clock.setTimeout(tick, everyMs);
  }

  stopLive(): void {
    this.#clock.clearTimeout(this.#liveTimer);
    this.#liveTimer = undefined;
  }

  /** The broadcast ended: live playlists get EXT-X-ENDLIST. */
  end(): void {
    this.stopLive();
    this.ended = true;
  }

  /** Bytes and attestation of a published segment. */
  segment(rendition: string, seq: number): { bytes: Uint8Array; attestation: Attestation } {
    const bytes = this.#bytes.get(`${rendition}/${seq}`);
    const attestation = this.#atts.get(`${rendition}/${seq}`);
    if (!bytes || !attestation) throw new Error(`no segment ${rendition}/${seq}`);
    return { bytes: bytes.slice(), attestation };
  }

  /** Requests of a segment's bytes (`.ts`) so far. */
  segmentRequests(rendition: string, seq: number): OriginRequest[] {
    const url = this.segmentUrl(rendition, seq);
    return this.requests.filter((r) => r.url === url);
  }

  /**
   * Overrides the profile of URLs matching `match` (a substring, a RegExp or a predicate); later
   * overrides win. Returns a function removing this one.
   */
  setProfile(
    match: string | RegExp | ((url: string) => boolean),
    profile: Partial<OriginProfile>,
  ): () => void {
    const fn =
      typeof match === 'string'
        ? (url: string) => url.includes(match)
        : match instanceof RegExp
          ? (url: string) => match.test(url)
          : match;
    const entry: Profiled = { match: fn, profile };
    this.#profiles.push(entry);
    return () => {
      const i = this.#profiles.indexOf(entry);
      if (i >= 0) this.#profiles.splice(i, 1);
    };
  }

  /** Sets the default profile of every URL. */
  setDefaultProfile(profile: Partial<Pick<OriginProfile, 'latencyMs' | 'bytesPerS'>>): void {
    if (profile.latencyMs !== undefined) this.opts.latencyMs = profile.latencyMs;
    if (profile.bytesPerS !== undefined) this.opts.bytesPerS = profile.bytesPerS;
  }

  profileFor(url: string): OriginProfile {
    let p: OriginProfile = { latencyMs: this.opts.latencyMs, bytesPerS: this.opts.bytesPerS };
    for (const { match, profile } of this.#profiles) if (match(url)) p = { ...p, ...profile };
    return p;
  }

  /** The channel as the tracker describes it. */
  channelInfo(): ChannelInfo {
    return {
      id: this.opts.channel,
      title: 'Fake channel',
      status: this.ended ? 'ended' : 'live',
      originUrl: this.opts.originUrl,
      publicKey: this.publicKey,
      segmentDurationS: this.opts.segmentDurationS,
      renditions: this.opts.ladder.map((r) => ({
        name: r.name,
        width: r.width,
        height: r.height,
        bandwidthBps: peakBandwidthBps(r, true),
      })),
      livePlaylist: `/channels/${this.opts.channel}/live/master.m3u8`,
      recordings: [],
      viewers: 0,
      offload: null,
    };
  }

  /** Removes the temp dir (when the origin made it). */
  close(): void {
    this.stopLive();
    this.store.destroy();
    if (this.#ownDir) fs.rmSync(this.#ownDir, { recursive: true, force: true });
  }

  // ---- HttpFetcher ----

  get(
    url: string,
    opts: { signal?: AbortSignal; onProgress?: (chunkBytes: number) => void } = {},
  ): Promise<HttpResponse> {
    const { signal, onProgress } = opts;
    const clock = this.#clock;
    return new Promise<HttpResponse>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const profile = this.profileFor(url);
      const content = this.#content(url);
      const kind = content.kind;
      let { status, body } = content;
      if (profile.status !== undefined && profile.status !== status) {
        status = profile.status;
        body = enc.encode(JSON.stringify({ error: `status ${status}` }));
      }
      const req: OriginRequest = {
        url,
        kind,
        at: clock.now(),
        status,
        bytes: 0,
        doneAt: undefined,
        aborted: false,
      };
      this.requests.push(req);
      this.served[kind].requests++;
      let timer: TimerHandle | undefined;
      const onAbort = () => {
        clock.clearTimeout(timer);
        req.aborted = true;
        reject(abortReason(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      if (profile.hang) return;
      const chunk = Math.max(1, this.opts.chunkBytes);
      const next = () => {
        if (req.bytes >= body.byteLength) {
          done();
          req.doneAt = clock.now();
          resolve({ status, bytes: body.slice() });
          return;
        }
        const size = Math.min(chunk, body.byteLength - req.bytes);
        const delayMs = Number.isFinite(profile.bytesPerS) ? (size / profile.bytesPerS) * 1000 : 0;
        timer = clock.setTimeout(() => {
          req.bytes += size;
          this.served[kind].bytes += size;
          onProgress?.(size);
          next();
        }, delayMs);
      };
      timer = clock.setTimeout(() => {
        if (profile.fail) {
          done();
          reject(new TypeError(`fetch failed: ${url} (simulated network error)`));
          return;
        }
        next();
      }, profile.latencyMs);
    });
  }

  #content(url: string): { status: number; body: Uint8Array; kind: OriginByteKind } {
    const notFound = (kind: OriginByteKind) => ({
      status: 404,
      body: enc.encode('{"error":"not found"}'),
      kind,
    });
    const prefix = `${this.base}/`;
    if (!url.startsWith(prefix)) return notFound('metadata');
    const rest = url.slice(prefix.length).split('?')[0]!;
    if (rest === 'channel.json') {
      const info = {
        id: this.opts.channel,
        title: 'Fake channel',
        status: this.ended ? 'ended' : 'live',
        originUrl: this.opts.originUrl,
        publicKey: this.publicKey,
        publicKeyAlgorithm: 'Ed25519',
        segmentDurationS: this.opts.segmentDurationS,
        renditions: this.opts.ladder.map((r) => ({ ...r })),
        live: { master: this.masterUrl, broadcast: '20250101-000000' },
        recordings: [],
      };
      return { status: 200, body: enc.encode(JSON.stringify(info)), kind: 'metadata' };
    }
    const live = /^live\/([a-z0-9][a-z0-9_-]*)\.m3u8$/.exec(rest);
    if (live) {
      const name = live[1]!;
      if (name === 'master') {
        const text = masterPlaylist({
          ladder: this.opts.ladder,
          fps: 30,
          hasAudio: true,
          uri: (r) => `${r}.m3u8`,
        });
        return { status: 200, body: enc.encode(text), kind: 'playlist' };
      }
      if (!this.opts.ladder.some((r) => r.name === name)) return notFound('playlist');
      const last = this.newest;
      if (last < 0) return notFound('playlist');
      const entries = this.store.entries(name, Math.max(0, last - this.opts.playlistWindow + 1), last);
      const text = mediaPlaylist({
        entries,
        segmentDurationS: this.opts.segmentDurationS,
        uri: (seq) => `../segments/${name}/${seq}.ts`,
        ended: this.ended,
        vod: false,
      });
      return { status: 200, body: enc.encode(text), kind: 'playlist' };
    }
    const seg = /^segments\/([a-z0-9][a-z0-9_-]*)\/(0|[1-9]\d{0,14})\.(ts|json)$/.exec(rest);
    if (seg) {
      const key = `${seg[1]}/${seg[2]}`;
      if (seg[3] === 'json') {
        const att = this.#atts.get(key);
        return att
          ? { status: 200, body: enc.encode(JSON.stringify(att)), kind: 'attestation' }
          : notFound('attestation');
      }
      const bytes = this.#bytes.get(key);
      return bytes ? { status: 200, body: bytes, kind: 'segment' } : notFound('segment');
    }
    return notFound('metadata');
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

// ---------------------------------------------------------------------------------------------------
// FakeTracker

export interface FakeTrackerOptions {
  /** One-way delay of every ack and push (ms). */
  latencyMs: number;
  reportIntervalMs: number;
  /** At join, introduce the newcomer to every peer of its channel and rendition (else: `introduce`). */
  introduceOnJoin: boolean;
  /** Peer ids that are first tier (when they join). */
  firstTier: Iterable<string>;
  /** The STUN probe addresses handed out at join (`JoinResult.natProbe`; none by default). */
  natProbe: string[] | undefined;
}

export const DEFAULT_FAKE_TRACKER: FakeTrackerOptions = {
  latencyMs: 5,
  reportIntervalMs: 1000,
  introduceOnJoin: true,
  firstTier: [],
  natProbe: undefined,
};

export interface FakePeer {
  id: string;
  conn: FakeTrackerConnection;
  rendition: string;
  firstTier: boolean;
  join: JoinRequest;
  /** Peers introduced to this one. */
  links: Set<string>;
}

/** A tracker hub: per-peer connections, introductions, relays, pushes and recorded reports. */
export class FakeTracker {
  readonly opts: FakeTrackerOptions;
  readonly peers = new Map<string, FakePeer>();
  readonly joins: JoinRequest[] = [];
  readonly reports: { peerId: string; at: number; report: PeerReport; valid: boolean }[] = [];
  readonly signals: { from: string; to: string; at: number; data: SignalData; ok: boolean }[] = [];
  /** Complaints about neighbours (`report-peer`), as received. */
  readonly complaints: { from: string; peer: string; code: PeerComplaintCode; at: number }[] = [];
  readonly #firstTier: Set<string>;
  #nextId = 1;

  constructor(
    readonly clock: Clock,
    public channel: ChannelInfo,
    opts: Partial<FakeTrackerOptions> = {},
  ) {
    this.opts = { ...DEFAULT_FAKE_TRACKER, ...opts };
    this.#firstTier = new Set(this.opts.firstTier);
  }

  /** A new session; `peerId` fixes the id the tracker will assign at join (default: generated). */
  connect(opts: { peerId?: string } = {}): FakeTrackerConnection {
    return new FakeTrackerConnection(this, opts.peerId);
  }

  /** Delivers `fn` after the tracker's one-way latency. */
  later(fn: () => void): void {
    this.clock.setTimeout(fn, this.opts.latencyMs);
  }

  /** @internal */
  nextPeerId(): string {
    return `peer${String(this.#nextId++).padStart(12, '0')}`;
  }

  isFirstTier(id: string): boolean {
    return this.#firstTier.has(id);
  }

  /** Introduces two peers to each other (both get a `neighbours` push). */
  introduce(a: string, b: string): void {
    const pa = this.peers.get(a);
    const pb = this.peers.get(b);
    if (!pa || !pb) throw new Error(`introduce: ${pa ? b : a} has not joined`);
    pa.links.add(b);
    pb.links.add(a);
    this.#notify(pa, [b], []);
    this.#notify(pb, [a], []);
  }

  /** No longer pairs two peers (both get a `neighbours` push removing the other). */
  unpair(a: string, b: string): void {
    const pa = this.peers.get(a);
    const pb = this.peers.get(b);
    if (!pa || !pb) throw new Error(`unpair: ${pa ? b : a} has not joined`);
    pa.links.delete(b);
    pb.links.delete(a);
    this.#notify(pa, [], [b]);
    this.#notify(pb, [], [a]);
  }

  /** Makes a peer first tier or not (pushed as a `neighbours` update, as the real tracker does). */
  setFirstTier(id: string, firstTier: boolean): void {
    if (firstTier) this.#firstTier.add(id);
    else this.#firstTier.delete(id);
    const p = this.peers.get(id);
    if (!p || p.firstTier === firstTier) return;
    p.firstTier = firstTier;
    this.#notify(p, [], []);
  }

  /** Pushes a planner's ranked suppliers to a peer (as Chandelier's pushes carry them; [] for none). */
  setParents(id: string, parents: string[]): void {
    const p = this.peers.get(id);
    if (!p) throw new Error(`setParents: ${id} has not joined`);
    this.#notify(p, [], [], parents);
  }

  /** Pushes an attestation to the peers of its channel and rendition. */
  pushAttestation(att: Attestation): void {
    if (att.channel !== this.channel.id) return;
    for (const p of this.peers.values())
      if (p.rendition === att.rendition) this.later(() => p.conn.deliver('attestation', att));
  }

  pushChannel(info: ChannelInfo): void {
    this.channel = info;
    for (const p of this.peers.values()) this.later(() => p.conn.deliver('channel', info));
  }

  /** The session of `id` drops (the engine keeps going); `reconnect` brings it back. */
  disconnect(id: string, reason = 'transport close'): void {
    const p = this.peers.get(id);
    if (!p) return;
    this.#remove(p);
    p.conn.lost(reason);
  }

  reportsOf(peerId: string): PeerReport[] {
    return this.reports.filter((r) => r.peerId === peerId).map((r) => r.report);
  }

  #notify(p: FakePeer, add: string[], remove: string[], parents?: string[]): void {
    const update = { add, remove, firstTier: p.firstTier, ...(parents && { parents }) };
    this.later(() => p.conn.deliver('neighbours', update));
  }

  /** @internal */
  admit(conn: FakeTrackerConnection, presetId: string | undefined, raw: JoinRequest): Ack<JoinResult> {
    const refuse = (code: TrackerErrorCode, message: string): Ack<JoinResult> => ({
      ok: false,
      error: { code, message },
    });
    if ((raw as { protocolVersion?: unknown }).protocolVersion !== TRACKER_PROTOCOL_VERSION)
      return refuse('version-mismatch', `this tracker speaks protocol ${TRACKER_PROTOCOL_VERSION}`);
    const parsed = joinRequestSchema.safeParse(raw);
    if (!parsed.success) return refuse('invalid-input', parsed.error.issues[0]?.message ?? 'invalid');
    const req = parsed.data;
    if (conn.peerId) return refuse('already-joined', 'this connection already joined');
    if (req.channel !== this.channel.id) return refuse('unknown-channel', `no channel ${req.channel}`);
    const renditions = this.channel.renditions;
    const rendition =
      req.rendition ?? renditions.reduce((a, b) => (a.bandwidthBps <= b.bandwidthBps ? a : b)).name;
    if (!renditions.some((r) => r.name === rendition))
      return refuse('invalid-input', `channel ${req.channel} has no rendition ${rendition}`);
    const id = presetId ?? this.nextPeerId();
    if (this.peers.has(id)) return refuse('internal', `peer id ${id} taken`);
    this.joins.push(raw);
    const peer: FakePeer = {
      id,
      conn,
      rendition,
      firstTier: this.#firstTier.has(id),
      join: raw,
      links: new Set(),
    };
    const neighbours = this.opts.introduceOnJoin
      ? [...this.peers.values()].filter((p) => p.rendition === rendition).map((p) => p.id)
      : [];
    this.peers.set(id, peer);
    for (const n of neighbours) {
      const other = this.peers.get(n)!;
      peer.links.add(n);
      other.links.add(id);
      this.#notify(other, [id], []);
    }
    return {
      ok: true,
      peerId: id,
      rendition,
      iceServers: [],
      ...(this.opts.natProbe && { natProbe: this.opts.natProbe }),
      channel: this.channel,
      neighbours,
      firstTier: peer.firstTier,
      reportIntervalMs: this.opts.reportIntervalMs,
    };
  }

  /** @internal */
  recordReport(from: string | undefined, report: PeerReport): void {
    if (!from) return;
    const valid = peerReportSchema.safeParse(report).success;
    this.reports.push({ peerId: from, at: this.clock.now(), report, valid });
    const p = this.peers.get(from);
    if (p && valid) p.rendition = report.rendition;
  }

  /** @internal */
  relay(from: string | undefined, to: string, data: SignalData): Ack<object> {
    const refuse = (code: TrackerErrorCode, message: string): Ack<object> => ({
      ok: false,
      error: { code, message },
    });
    const record = (ok: boolean) => from && this.signals.push({ from, to, at: this.clock.now(), data, ok });
    if (!signalRequestSchema.safeParse({ to, data }).success) {
      record(false);
      return refuse('invalid-input', 'invalid signal');
    }
    const source = from ? this.peers.get(from) : undefined;
    if (!source) return refuse('not-joined', 'join a channel first');
    const target = this.peers.get(to);
    if (!target) {
      record(false);
      return refuse('unknown-peer', 'no such peer');
    }
    if (!source.links.has(to)) {
      record(false);
      return refuse('not-introduced', 'the tracker did not introduce these peers');
    }
    record(true);
    this.later(() => target.conn.deliver('signal', { from: source.id, data }));
    return { ok: true };
  }

  /** @internal */
  depart(id: string | undefined): void {
    const p = id ? this.peers.get(id) : undefined;
    if (p) this.#remove(p);
  }

  #remove(p: FakePeer): void {
    this.peers.delete(p.id);
    for (const other of p.links) {
      const o = this.peers.get(other);
      if (!o) continue;
      o.links.delete(p.id);
      this.#notify(o, [], [p.id]);
    }
  }
}

/** One peer's session with the {@link FakeTracker}. */
export class FakeTrackerConnection
  extends TypedEmitter<TrackerConnectionEvents>
  implements TrackerConnection
{
  /** The id assigned at join (undefined before, and after leaving). */
  peerId: string | undefined;
  closed = false;
  connected = true;
  readonly sent: PeerReport[] = [];

  constructor(
    readonly hub: FakeTracker,
    readonly presetId: string | undefined,
  ) {
    super();
  }

  join(req: JoinRequest): Promise<Ack<JoinResult>> {
    return new Promise((resolve, reject) => {
      if (this.closed || !this.connected) return reject(new Error('not connected to the tracker'));
      // The request travels to the tracker, the answer back.
      this.hub.later(() => {
        const ack = this.hub.admit(this, this.presetId, req);
        if (ack.ok) this.peerId = ack.peerId;
        this.hub.later(() => resolve(ack));
      });
    });
  }

  report(report: PeerReport): void {
    if (this.closed || !this.connected) return;
    this.sent.push(report);
    const from = this.peerId;
    this.hub.later(() => this.hub.recordReport(from, report));
  }

  signal(to: string, data: SignalData): Promise<Ack<object>> {
    return new Promise((resolve, reject) => {
      if (this.closed || !this.connected) return reject(new Error('not connected to the tracker'));
      const from = this.peerId;
      this.hub.later(() => {
        const ack = this.hub.relay(from, to, data);
        this.hub.later(() => resolve(ack));
      });
    });
  }

  reportPeer(peer: string, code: PeerComplaintCode): void {
    if (this.closed || !this.connected) return;
    const from = this.peerId;
    if (from) this.hub.later(() => this.hub.complaints.push({ from, peer, code, at: this.hub.clock.now() }));
  }

  leave(): void {
    const id = this.peerId;
    this.peerId = undefined;
    if (id) this.hub.later(() => this.hub.depart(id));
  }

  destroy(): void {
    if (this.closed) return;
    this.leave();
    this.closed = true;
  }

  /** @internal the hub pushes an event. */
  deliver<E extends keyof TrackerConnectionEvents>(
    event: E,
    ...args: Parameters<TrackerConnectionEvents[E]>
  ): void {
    if (this.closed || !this.connected) return;
    this.emit(event, ...args);
  }

  /** @internal the hub dropped this session. */
  lost(reason: string): void {
    this.peerId = undefined;
    this.connected = false;
    this.emit('disconnected', reason);
  }

  /** The session comes back (the engine joins again). */
  reconnect(): void {
    if (this.closed || this.connected) return;
    this.connected = true;
    this.emit('reconnected');
  }
}

// ---------------------------------------------------------------------------------------------------
// RawPeer

export type HelloMessage = Extract<WireMessage, { type: 'hello' }>;

export interface RawPeerOptions {
  network: MemoryNetwork;
  tracker: FakeTracker;
  peerId: string;
  channel: string;
  rendition?: string;
  /**
   * What it sends when a link connects: a hello (default; fields may be overridden), raw bytes, or
   * nothing (`false`).
   */
  hello?: Partial<HelloMessage> | Uint8Array | false;
}

export type RawPeerEvents = {
  /** A link connected. */
  connect: (remoteId: string) => void;
  message: (from: string, msg: WireMessage) => void;
  close: (remoteId: string, reason: string) => void;
};

export interface Inbound {
  from: string;
  at: number;
  msg: WireMessage;
}

/** A peer speaking the wire protocol by hand, for honest, broken and malicious neighbours. */
export class RawPeer extends TypedEmitter<RawPeerEvents> {
  readonly id: string;
  readonly conn: FakeTrackerConnection;
  readonly links = new Map<string, PeerLink>();
  /** Every message received, decoded. */
  readonly inbox: Inbound[] = [];
  readonly closes: { remoteId: string; reason: string; at: number }[] = [];
  /** Messages that did not decode. */
  readonly malformed: { from: string; error: string }[] = [];
  /** Links created (including ones that never connected). */
  linksCreated = 0;
  readonly #clock: Clock;

  constructor(readonly opts: RawPeerOptions) {
    super();
    this.id = opts.peerId;
    this.#clock = opts.network.clock;
    this.conn = opts.tracker.connect({ peerId: opts.peerId });
    this.conn.on('signal', ({ from, data }) => {
      let link = this.links.get(from);
      if (!link) link = this.#createLink(from, false);
      link.signal(data);
    });
    this.conn.on('neighbours', (u) => {
      for (const id of u.add) if (this.id < id && !this.links.has(id)) this.dial(id);
    });
  }

  /** Joins the tracker (run the clock to resolve it). */
  async join(): Promise<void> {
    const ack = await this.conn.join({
      protocolVersion: TRACKER_PROTOCOL_VERSION,
      channel: this.opts.channel,
      kind: 'node',
      mode: 'viewer',
      ...(this.opts.rendition && { rendition: this.opts.rendition }),
      uploadKbps: 10_000,
      natType: 'open',
    });
    if (!ack.ok) throw new Error(`join refused: ${ack.error.code}`);
    for (const id of ack.neighbours) if (this.id < id && !this.links.has(id)) this.dial(id);
  }

  /** Opens a link to `remoteId` (this side offers). */
  dial(remoteId: string): PeerLink {
    return this.#createLink(remoteId, true);
  }

  connected(remoteId: string): boolean {
    return this.links.get(remoteId)?.connected ?? false;
  }

  /** Sends a message (or raw bytes) if the link is up; returns whether it was sent. */
  send(to: string, msg: WireMessage | Uint8Array): boolean {
    const link = this.links.get(to);
    if (!link?.connected) return false;
    link.send(msg instanceof Uint8Array ? msg : encodeMessage(msg));
    return true;
  }

  /** Sends `bytes` as `data` chunks answering `requestId` (`totalBytes` defaults to their length). */
  sendData(
    to: string,
    requestId: number,
    bytes: Uint8Array,
    opts: { totalBytes?: number; chunkBytes?: number; offset?: number } = {},
  ): void {
    const total = opts.totalBytes ?? bytes.byteLength;
    const chunk = Math.min(opts.chunkBytes ?? 16 * 1024, MAX_CHUNK_BYTES);
    const start = opts.offset ?? 0;
    for (let off = 0; off < bytes.byteLength; off += chunk)
      this.send(to, {
        type: 'data',
        requestId,
        offset: start + off,
        totalBytes: total,
        bytes: bytes.subarray(off, Math.min(bytes.byteLength, off + chunk)),
      });
  }

  /** Messages of a type received from `from`. */
  received<T extends WireMessage['type']>(from: string, type: T): Extract<WireMessage, { type: T }>[] {
    return this.inbox
      .filter((m) => m.from === from && m.msg.type === type)
      .map((m) => m.msg as Extract<WireMessage, { type: T }>);
  }

  /** Codes of the `bye` messages received from `from`. */
  byes(from: string): string[] {
    return this.received(from, 'bye').map((m) => m.code);
  }

  /** Reassembles the `data` answers to `requestId` from `from` (in arrival order). */
  dataFor(from: string, requestId: number): { bytes: Uint8Array; totalBytes: number } | undefined {
    const chunks = this.received(from, 'data').filter((d) => d.requestId === requestId);
    if (chunks.length === 0) return undefined;
    const totalBytes = chunks[0]!.totalBytes;
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.bytes.byteLength, 0));
    let at = 0;
    for (const c of chunks) {
      out.set(c.bytes, at);
      at += c.bytes.byteLength;
    }
    return { bytes: out, totalBytes };
  }

  close(remoteId: string): void {
    this.links.get(remoteId)?.destroy('raw peer closed');
  }

  #createLink(remoteId: string, initiator: boolean): PeerLink {
    const link = this.opts.network.transport(this.id).createLink({
      localId: this.id,
      remoteId,
      initiator,
      iceServers: [],
    });
    this.linksCreated++;
    this.links.set(remoteId, link);
    link.on('signal', (data) => void this.conn.signal(remoteId, data).catch(() => {}));
    link.on('connect', () => {
      const hello = this.opts.hello;
      if (hello instanceof Uint8Array) link.send(hello);
      else if (hello !== false)
        link.send(
          encodeMessage({
            type: 'hello',
            version: WIRE_VERSION,
            peerId: this.id,
            channel: this.opts.channel,
            ...hello,
          }),
        );
      this.emit('connect', remoteId);
    });
    link.on('data', (bytes) => {
      let msg: WireMessage;
      try {
        msg = decodeMessage(bytes);
      } catch (err) {
        this.malformed.push({ from: remoteId, error: (err as Error).message });
        return;
      }
      this.inbox.push({ from: remoteId, at: this.#clock.now(), msg });
      this.emit('message', remoteId, msg);
    });
    link.on('close', (reason) => {
      if (this.links.get(remoteId) === link) this.links.delete(remoteId);
      this.closes.push({ remoteId, reason, at: this.#clock.now() });
      this.emit('close', remoteId, reason);
    });
    return link;
  }
}
