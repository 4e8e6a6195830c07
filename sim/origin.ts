/**
 * The simulated origin (or CDN edge): an {@link HttpFetcher} that every simulated engine is given,
 * serving {@link SimSource}s at the real origin's URL layout (protocol's origin-layout.ts): channel.json
 * (public key, live master), the live master and media playlists written by source's own playlist
 * functions, segments and their attestations (`.json`), and attestation runs. Recordings are not
 * simulated (404).
 *
 * Timing, all on the virtual clock:
 * - Latency: the response starts `latencyMs` (+ a seeded uniform jitter in [0, `latencyJitterMs`)) after
 *   the request. Content is taken at that moment (a playlist is as fresh as when the origin answers).
 * - Egress: one capacity (`egressBytesPerS`, default unlimited) shared by every response body being
 *   sent, in equal shares (processor sharing: what TCP flows through one bottleneck uplink converge to,
 *   as at an origin's or edge's uplink); a response alone gets all of it, so B bytes arrive
 *   `latencyMs + B / C` after the request. Bodies arrive in chunks of `chunkBytes` (one `onProgress`
 *   each); with unlimited egress the whole body arrives with the first byte.
 *
 * Counting, as the real origin's `/stats` (source/origin.ts, origin-responses.ts `ChannelCounters`),
 * per channel and kind: a request is counted when the origin answers it (after the latency; an error
 * status is not counted); playlist, attestation and metadata bytes are counted whole at that moment;
 * segment bytes as they are sent (a request aborted midway counts what was sent until then). A request
 * aborted before the origin answered is not counted.
 *
 * Aborts through the caller's `AbortSignal` reject with its reason, as `fetch` does; unknown URLs get
 * 404; responses share the source's buffers (no copy: callers must not mutate them).
 */
import {
  atOrigin,
  isChannelId,
  isRenditionName,
  originPaths,
  playlistSegmentUri,
  TypedEmitter,
} from '../protocol/index.ts';
import type { ByteKind, ChannelCounters } from '../source/index.ts';
import { MinHeap, type Clock, type HttpFetcher, type HttpResponse, type TimerHandle } from '../peer/index.ts';
import type { Rng } from './rng.ts';
import type { SimSource } from './source.ts';

export interface SimOriginOptions {
  /** The origin's public URL (what channel.json's URLs start with). */
  originUrl: string;
  /** Time from a request to its first byte (ms). */
  latencyMs: number;
  /** Each request's latency gets a uniform extra in [0, this) (ms; needs an `rng`). */
  latencyJitterMs: number;
  /** Egress capacity shared by every response (bytes per simulated second); Infinity: unlimited. */
  egressBytesPerS: number;
  /** Body chunk size: one `onProgress` per chunk. */
  chunkBytes: number;
}

export const DEFAULT_SIM_ORIGIN: SimOriginOptions = {
  originUrl: 'http://origin.sim',
  latencyMs: 20,
  latencyJitterMs: 0,
  egressBytesPerS: Infinity,
  chunkBytes: 64 * 1024,
};

/** One response, once it finished or was aborted (for tests and reports). */
export interface SimOriginResponse {
  url: string;
  channel: string | undefined;
  kind: ByteKind;
  status: number;
  /** Body bytes delivered (all of them unless aborted). */
  bytes: number;
  requestedAt: number;
  /** When the first byte arrived (undefined: aborted before). */
  firstByteAt: number | undefined;
  /** When the body was complete or the request aborted. */
  endedAt: number;
  aborted: boolean;
}

export type SimOriginEvents = {
  response: (r: SimOriginResponse) => void;
};

const MAX_ATTESTATION_BATCH = 500;
/** Byte tolerance when comparing processor-sharing tags (float rounding). */
const EPSILON_BYTES = 1e-6;
const encoder = new TextEncoder();

interface Answer {
  status: number;
  body: Uint8Array;
  kind: ByteKind;
  counters: ChannelCounters | undefined;
}

interface Request {
  id: number;
  url: string;
  channel: string | undefined;
  requestedAt: number;
  signal: AbortSignal | undefined;
  onProgress: ((chunkBytes: number) => void) | undefined;
  resolve: (r: HttpResponse) => void;
  reject: (err: unknown) => void;
  onAbort: () => void;
  timer: TimerHandle | undefined;
  answer: Answer | undefined;
  firstByteAt: number | undefined;
  /** Body bytes delivered so far. */
  sent: number;
  /** End of the chunk being sent (bytes of the body). */
  milestone: number;
  /** Processor-sharing tag at which the current chunk is complete. */
  tag: number;
  done: boolean;
}

export class SimOrigin extends TypedEmitter<SimOriginEvents> implements HttpFetcher {
  readonly opts: SimOriginOptions;
  readonly #clock: Clock;
  readonly #rng: Rng | undefined;
  readonly #sources = new Map<string, SimSource>();
  readonly #counters = new Map<string, ChannelCounters>();
  readonly #channelJson = new Map<string, { status: string; bytes: Uint8Array }>();
  readonly #waiting = new Set<Request>();
  /** Bodies being sent: a min-heap on (tag, id); finished or aborted ones are skipped lazily. */
  readonly #heap = new MinHeap<Request>(
    (a, b) => a.tag < b.tag || (a.tag === b.tag && a.id < b.id),
    (r) => r.done,
  );
  #sending = 0;
  /** Processor-sharing virtual time: bytes each body being sent has received since the start. */
  #vBytes = 0;
  #vAt = 0;
  #timer: TimerHandle | undefined;
  #nextId = 0;
  #destroyed = false;
  /** Body bytes sent, everything included. */
  egressBytes = 0;

  /** `rng`: the run's generator (the origin draws latency jitter from its own fork). */
  constructor(clock: Clock, opts: Partial<SimOriginOptions> = {}, rng?: Rng) {
    super();
    const o: SimOriginOptions = { ...DEFAULT_SIM_ORIGIN, ...opts };
    o.originUrl = o.originUrl.replace(/\/+$/, '');
    if (!(o.latencyMs >= 0) || !(o.latencyJitterMs >= 0))
      throw new RangeError('SimOrigin: latencyMs and latencyJitterMs must be ≥ 0');
    if (o.latencyJitterMs > 0 && !rng) throw new RangeError('SimOrigin: latency jitter needs an rng');
    if (!(o.egressBytesPerS > 0)) throw new RangeError('SimOrigin: egressBytesPerS must be > 0');
    if (!Number.isInteger(o.chunkBytes) || o.chunkBytes < 1)
      throw new RangeError('SimOrigin: chunkBytes must be an integer ≥ 1');
    this.opts = o;
    this.#clock = clock;
    this.#rng = rng?.fork('origin');
    this.#vAt = clock.now();
  }

  get originUrl(): string {
    return this.opts.originUrl;
  }

  /** Requests not finished yet (waiting for their first byte or being sent). */
  get inFlight(): number {
    return this.#waiting.size + this.#sending;
  }

  addChannel(source: SimSource): void {
    if (this.#sources.has(source.channel)) throw new Error(`channel ${source.channel} is already served`);
    this.#sources.set(source.channel, source);
    this.#counters.set(source.channel, {
      playlist: { bytes: 0, requests: 0 },
      segment: { bytes: 0, requests: 0 },
      attestation: { bytes: 0, requests: 0 },
      metadata: { bytes: 0, requests: 0 },
    });
  }

  removeChannel(id: string): void {
    this.#sources.delete(id);
  }

  /** Bytes and requests served, per channel and kind (a copy), as the real origin's `/stats`. */
  counters(): Record<string, ChannelCounters> {
    return Object.fromEntries([...this.#counters].map(([id, c]) => [id, structuredClone(c)]));
  }

  /** The live master playlist's URL of a channel. */
  masterUrl(channel: string): string {
    return atOrigin(this.opts.originUrl, originPaths.liveMaster(channel));
  }

  /** Fails every request in flight as a network error, and every later one. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#clock.clearTimeout(this.#timer);
    const all = [...this.#waiting, ...this.#heap.live()];
    this.#waiting.clear();
    this.#heap.clear();
    this.#sending = 0;
    for (const r of all) {
      this.#clock.clearTimeout(r.timer);
      r.done = true;
      r.signal?.removeEventListener('abort', r.onAbort);
      r.reject(new TypeError(`fetch failed: ${r.url} (origin destroyed)`));
    }
  }

  // ---- HttpFetcher ----

  get(
    url: string,
    opts: { signal?: AbortSignal; onProgress?: (chunkBytes: number) => void } = {},
  ): Promise<HttpResponse> {
    const { signal, onProgress } = opts;
    return new Promise<HttpResponse>((resolve, reject) => {
      if (this.#destroyed) return reject(new TypeError(`fetch failed: ${url} (origin destroyed)`));
      if (signal?.aborted) return reject(abortReason(signal));
      const r: Request = {
        id: this.#nextId++,
        url,
        channel: undefined,
        requestedAt: this.#clock.now(),
        signal,
        onProgress,
        resolve,
        reject,
        onAbort: () => this.#abort(r),
        timer: undefined,
        answer: undefined,
        firstByteAt: undefined,
        sent: 0,
        milestone: 0,
        tag: 0,
        done: false,
      };
      signal?.addEventListener('abort', r.onAbort, { once: true });
      const latencyMs =
        this.opts.latencyMs +
        (this.opts.latencyJitterMs > 0 ? this.#rng!.uniform(0, this.opts.latencyJitterMs) : 0);
      this.#waiting.add(r);
      r.timer = this.#clock.setTimeout(() => this.#answer(r), latencyMs);
    });
  }

  /** The origin answers: content now, counted now; the body starts. */
  #answer(r: Request): void {
    this.#waiting.delete(r);
    r.timer = undefined;
    const a = this.#route(r);
    r.answer = a;
    if (a.counters && a.status === 200) {
      a.counters[a.kind].requests++;
      if (a.kind !== 'segment') a.counters[a.kind].bytes += a.body.byteLength;
    }
    r.firstByteAt = this.#clock.now();
    const size = a.body.byteLength;
    if (size === 0 || this.opts.egressBytesPerS === Infinity) {
      r.sent = size;
      this.#sent(r, size);
      return this.#finish(r);
    }
    this.#sync();
    r.milestone = Math.min(size, this.opts.chunkBytes);
    r.tag = this.#vBytes + r.milestone;
    this.#heap.push(r);
    this.#sending++;
    this.#arm();
  }

  /** `n` body bytes reached the caller. */
  #sent(r: Request, n: number): void {
    if (n <= 0) return;
    this.egressBytes += n;
    const a = r.answer!;
    if (a.kind === 'segment' && a.status === 200 && a.counters) a.counters.segment.bytes += n;
    r.onProgress?.(n);
  }

  #finish(r: Request): void {
    if (r.done) return;
    r.done = true;
    r.signal?.removeEventListener('abort', r.onAbort);
    const a = r.answer!;
    this.#report(r, false);
    r.resolve({ status: a.status, bytes: a.body });
  }

  #abort(r: Request): void {
    if (r.done) return;
    r.done = true;
    if (this.#waiting.delete(r)) this.#clock.clearTimeout(r.timer);
    else if (r.answer) {
      // Being sent: it leaves the share; what it received of its current chunk counts as sent.
      this.#sync();
      const chunkStartTag = r.tag - (r.milestone - r.sent);
      const partial = Math.min(r.milestone - r.sent, Math.max(0, Math.floor(this.#vBytes - chunkStartTag)));
      this.egressBytes += partial;
      if (r.answer.kind === 'segment' && r.answer.status === 200 && r.answer.counters)
        r.answer.counters.segment.bytes += partial;
      r.sent += partial;
      this.#sending--;
      this.#arm();
    }
    this.#report(r, true);
    r.reject(abortReason(r.signal!));
  }

  #report(r: Request, aborted: boolean): void {
    if (this.listenerCount('response') === 0) return;
    this.emit('response', {
      url: r.url,
      channel: r.channel,
      kind: r.answer?.kind ?? kindOf(r.url),
      status: r.answer?.status ?? 0,
      bytes: r.sent,
      requestedAt: r.requestedAt,
      firstByteAt: r.firstByteAt,
      endedAt: this.#clock.now(),
      aborted,
    });
  }

  // ---- processor sharing ----

  /** Brings the virtual time to now: each body being sent got an equal share since the last sync. */
  #sync(): void {
    const now = this.#clock.now();
    if (this.#sending > 0)
      this.#vBytes += ((now - this.#vAt) * this.opts.egressBytesPerS) / 1000 / this.#sending;
    this.#vAt = now;
  }

  /** Sets the one timer to the next chunk completion. */
  #arm(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const next = this.#heap.peek();
    if (!next) return;
    const ms = ((next.tag - this.#vBytes) * this.#sending * 1000) / this.opts.egressBytesPerS;
    this.#timer = this.#clock.setTimeout(() => this.#onChunks(), Math.max(0, ms));
  }

  #onChunks(): void {
    this.#timer = undefined;
    this.#sync();
    const first = this.#heap.peek();
    if (first) this.#vBytes = Math.max(this.#vBytes, first.tag);
    for (let r = this.#heap.peek(); r && r.tag <= this.#vBytes + EPSILON_BYTES; r = this.#heap.peek()) {
      this.#heap.pop();
      const n = r.milestone - r.sent;
      r.sent = r.milestone;
      this.#sent(r, n);
      if (r.done) continue; // aborted by its progress listener
      const size = r.answer!.body.byteLength;
      if (r.sent < size) {
        r.milestone = Math.min(size, r.sent + this.opts.chunkBytes);
        r.tag += r.milestone - r.sent;
        this.#heap.push(r);
      } else {
        this.#sending--;
        this.#finish(r);
      }
    }
    this.#arm();
  }

  // ---- routing (source/origin.ts's #route, on SimSources) ----

  #route(r: Request): Answer {
    const error = (status: number, message: string, counters?: ChannelCounters): Answer => ({
      status,
      body: encoder.encode(JSON.stringify({ error: message })),
      kind: kindOf(r.url),
      counters,
    });
    const prefix = `${this.opts.originUrl}/channels/`;
    if (!r.url.startsWith(prefix)) return error(404, 'not found');
    const [raw = '', query = ''] = r.url.slice(prefix.length).split('?', 2);
    if (raw.includes('%') || raw.includes('..') || raw.includes('//') || raw.includes('\\'))
      return error(400, 'bad path');
    const [channelId, section, a, b, ...rest] = raw.split('/').filter(Boolean);
    const source = isChannelId(channelId) ? this.#sources.get(channelId) : undefined;
    if (!source) return error(404, 'unknown channel');
    r.channel = source.channel;
    const counters = this.#counters.get(source.channel)!;
    const ok = (body: Uint8Array, kind: ByteKind): Answer => ({ status: 200, body, kind, counters });

    if (section === 'channel.json' && a === undefined) return ok(this.#channelInfo(source), 'metadata');
    if (section === 'live' && a !== undefined && b === undefined) {
      if (source.status === 'idle') return error(404, 'channel offline: nothing broadcast yet');
      if (a === 'master.m3u8') return ok(source.masterPlaylist(), 'playlist');
      const rendition = /^([a-z0-9][a-z0-9_-]*)\.m3u8$/.exec(a)?.[1];
      if (!rendition || !source.ladder.some((x) => x.name === rendition))
        return error(404, 'unknown rendition');
      const text = source.mediaPlaylist(rendition, playlistSegmentUri.live);
      return text ? ok(text, 'playlist') : error(404, 'broadcast starting: no segment yet');
    }
    if (section === 'segments' && a !== undefined && b !== undefined && rest.length === 0) {
      const m = /^(0|[1-9]\d{0,14})\.(ts|json)$/.exec(b);
      if (!isRenditionName(a) || !m) return error(404, 'not found');
      const seg = source.segment(a, Number(m[1]));
      if (!seg) return error(404, 'no such segment');
      return m[2] === 'json' ? ok(source.recordJson(seg), 'attestation') : ok(seg.payload, 'segment');
    }
    if (section === 'attestations' && a !== undefined && b === undefined) {
      const params = new URLSearchParams(query);
      const from = Number(params.get('from') ?? 0);
      const limit = Number(params.get('limit') ?? 100);
      if (!isRenditionName(a)) return error(404, 'unknown rendition');
      if (!Number.isSafeInteger(from) || from < 0) return error(400, 'from must be a non-negative integer');
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_ATTESTATION_BATCH)
        return error(400, `limit must be an integer from 1 to ${MAX_ATTESTATION_BATCH}`);
      const attestations = source.records(a, from, from + limit - 1);
      return ok(encoder.encode(JSON.stringify({ rendition: a, from, attestations })), 'attestation');
    }
    return error(404, 'not found');
  }

  /** channel.json as the real origin writes it (re-encoded only when the status changes). */
  #channelInfo(source: SimSource): Uint8Array {
    const cached = this.#channelJson.get(source.channel);
    if (cached?.status === source.status) return cached.bytes;
    const id = source.channel;
    const info = {
      id,
      title: source.opts.title,
      status: source.status,
      originUrl: this.opts.originUrl,
      publicKey: source.publicKey,
      publicKeyAlgorithm: 'Ed25519',
      segmentDurationS: source.opts.segmentDurationS,
      renditions: source.ladder.map((r) => ({ ...r })),
      live:
        source.status === 'idle'
          ? null
          : { master: atOrigin(this.opts.originUrl, originPaths.liveMaster(id)), broadcast: 'sim' },
      recordings: [],
    };
    const bytes = encoder.encode(JSON.stringify(info));
    this.#channelJson.set(id, { status: source.status, bytes });
    return bytes;
  }
}

/** What a URL's bytes count as (for requests that were never answered). */
function kindOf(url: string): ByteKind {
  const path = url.split('?')[0]!;
  if (path.endsWith('.m3u8')) return 'playlist';
  if (path.endsWith('.ts')) return 'segment';
  if (path.endsWith('/channel.json')) return 'metadata';
  return path.includes('/segments/') || path.includes('/attestations/') ? 'attestation' : 'metadata';
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}
