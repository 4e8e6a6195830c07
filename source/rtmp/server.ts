/**
 * RTMP ingest for OBS and other encoders: `rtmp://HOST:1935/live/<streamKey>`.
 *
 * A small RTMP server (handshake, chunk streams, AMF0 commands) that accepts *publishers only*. The
 * stream key is checked at `publish`, before any media is taken: a wrong key gets
 * `NetStream.Publish.BadName` and the connection is closed, so nothing is published. Accepted media
 * is re-muxed to FLV and handed to the channel's encoder on its stdin (see `IngestSession`).
 *
 * Until its `publish` is accepted a connection is *pending* and holds almost nothing: it must get
 * there within `publishDeadlineMs` of being accepted (however slowly it trickles bytes), it works under
 * the small `pendingLimits` (message size, chunk size, chunk streams, bytes buffered, bytes queued for
 * it), and pending connections are capped per address and server-wide. A newcomer is never turned away
 * for lack of room: the least advanced, oldest pending connection of the same address (per-address cap)
 * or of the address holding the most pending connections (global cap) is closed instead, so whoever has
 * the stream key always gets through. Authenticated publishers never count against those caps and work
 * under `publisherLimits` (a 4K keyframe can take a few MB). Unfinished messages are assembled in one
 * buffer each, grown on demand (never sized from the length a peer announces) and dropped on close.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import createDebug from 'debug';
import { TypedEmitter, type RtmpRefusalCode } from '../../protocol/index.ts';
import type { IngestSession } from '../channel.ts';
import { ConfigError } from '../config.ts';
import { decodeAmf0, encodeAmf0, type AmfValue } from './amf0.ts';

const debug = createDebug('peertv:source:rtmp');

export interface RtmpTarget {
  acceptPublisher(session: IngestSession): boolean;
}

/** What one connection may make the server hold. */
export interface RtmpLimits {
  /** Largest message a peer may announce. */
  maxMessageBytes: number;
  /** Largest chunk size a peer may set (SetChunkSize). */
  maxChunkSizeBytes: number;
  /** Chunk streams a peer may open. */
  maxChunkStreams: number;
  /** Bytes held for the connection's unfinished messages (and handshake), all chunk streams together. */
  maxBufferedBytes: number;
  /** Bytes of replies queued for a peer that does not read them. */
  maxWriteBufferBytes: number;
}

export interface RtmpIngestOptions {
  /** Finds the channel a stream key publishes to (compare keys in constant time). */
  resolve: (streamKey: string) => RtmpTarget | undefined;
  /** RTMP application name in the URL. */
  app: string;
  /** From accept to an accepted `publish` (handshake, connect, createStream, publish), however active. */
  publishDeadlineMs: number;
  /** A connection whose socket is silent for this long is dropped. */
  idleTimeoutMs: number;
  /** How long after `publish` the first video keyframe may take. */
  firstKeyframeTimeoutMs: number;
  /** Pending (not yet authenticated) connections, server-wide. */
  maxPendingConnections: number;
  /** Pending connections from one address (IPv4) or /64 prefix (IPv6). */
  maxPendingPerAddress: number;
  /** Limits before `publish` is accepted: commands are small. */
  pendingLimits: RtmpLimits;
  /** Limits once `publish` is accepted: generous (media), still finite. */
  publisherLimits: RtmpLimits;
}

/** What callers give: every field but `resolve` is optional, limits field by field. */
export type RtmpIngestConfig = Partial<
  Omit<RtmpIngestOptions, 'resolve' | 'pendingLimits' | 'publisherLimits'>
> &
  Pick<RtmpIngestOptions, 'resolve'> & {
    pendingLimits?: Partial<RtmpLimits>;
    publisherLimits?: Partial<RtmpLimits>;
  };

const KIB = 1024;
const MIB = 1024 * 1024;

export const DEFAULT_RTMP: Omit<RtmpIngestOptions, 'resolve'> = {
  app: 'live',
  publishDeadlineMs: 5_000,
  idleTimeoutMs: 20_000,
  firstKeyframeTimeoutMs: 15_000,
  maxPendingConnections: 64,
  maxPendingPerAddress: 8,
  pendingLimits: {
    maxMessageBytes: 64 * KIB,
    maxChunkSizeBytes: 64 * KIB,
    maxChunkStreams: 8,
    maxBufferedBytes: 128 * KIB,
    maxWriteBufferBytes: 64 * KIB,
  },
  publisherLimits: {
    maxMessageBytes: 8 * MIB,
    maxChunkSizeBytes: 16 * MIB,
    maxChunkStreams: 32,
    maxBufferedBytes: 16 * MIB,
    maxWriteBufferBytes: 1 * MIB,
  },
};

/** Why a connection was turned away (stable codes; `reason` is the human-readable detail). */
export type { RtmpRefusalCode };

export type RtmpIngestEvents = {
  publish: (info: { sessionId: string; remote: string; streamKey: string }) => void;
  refused: (info: { sessionId: string; remote: string; code: RtmpRefusalCode; reason: string }) => void;
  closed: (info: { sessionId: string; clean: boolean }) => void;
};

export interface RtmpIngestStats {
  connections: number;
  /** Connections whose `publish` is not accepted yet. */
  pending: number;
  /** Bytes held for unfinished messages and handshakes, all connections together. */
  bufferedBytes: number;
  /** Of which by pending connections. */
  pendingBufferedBytes: number;
}

/** Constant-time comparison of stream keys. */
export function streamKeyMatches(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

/** Pending connections are counted per IPv4 address and per IPv6 /64 (one host's usual allocation). */
export function addressBucket(address: string | undefined): string {
  if (!address) return 'unknown';
  const plain = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain);
  if (mapped) return mapped[1]!;
  if (!net.isIPv6(plain)) return plain;
  const [head = '', tail] = plain.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

function validate(o: RtmpIngestOptions): void {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`rtmp ${name} must be a positive integer`);
  };
  positive('publishDeadlineMs', o.publishDeadlineMs);
  positive('idleTimeoutMs', o.idleTimeoutMs);
  positive('firstKeyframeTimeoutMs', o.firstKeyframeTimeoutMs);
  positive('maxPendingConnections', o.maxPendingConnections);
  positive('maxPendingPerAddress', o.maxPendingPerAddress);
  if (o.maxPendingPerAddress > o.maxPendingConnections)
    throw new ConfigError('rtmp maxPendingPerAddress must not exceed maxPendingConnections');
  for (const [which, l] of [
    ['pendingLimits', o.pendingLimits],
    ['publisherLimits', o.publisherLimits],
  ] as const) {
    for (const [k, v] of Object.entries(l)) positive(`${which}.${k}`, v);
    if (l.maxBufferedBytes < l.maxMessageBytes)
      throw new ConfigError(`rtmp ${which}.maxBufferedBytes must be at least its maxMessageBytes`);
    if (l.maxChunkStreams < 2) throw new ConfigError(`rtmp ${which}.maxChunkStreams must be at least 2`);
  }
  for (const k of Object.keys(o.pendingLimits) as (keyof RtmpLimits)[])
    if (o.pendingLimits[k] > o.publisherLimits[k])
      throw new ConfigError(`rtmp pendingLimits.${k} must not exceed publisherLimits.${k}`);
}

/** What a connection tells the server that owns it. */
interface ConnectionOwner {
  report<E extends keyof RtmpIngestEvents>(event: E, ...args: Parameters<RtmpIngestEvents[E]>): void;
  /** The connection is authenticated or closing: it no longer counts as pending. */
  leavePending(conn: RtmpConnection): void;
  gone(conn: RtmpConnection): void;
}

export class RtmpIngestServer extends TypedEmitter<RtmpIngestEvents> {
  readonly #opts: RtmpIngestOptions;
  readonly #server: net.Server;
  readonly #sessions = new Set<RtmpConnection>();
  /** Pending connections by address bucket, oldest first. */
  readonly #pending = new Map<string, Set<RtmpConnection>>();
  #pendingCount = 0;
  #closing: Promise<void> | undefined;

  constructor(opts: RtmpIngestConfig) {
    super();
    this.#opts = {
      ...DEFAULT_RTMP,
      ...opts,
      pendingLimits: { ...DEFAULT_RTMP.pendingLimits, ...opts.pendingLimits },
      publisherLimits: { ...DEFAULT_RTMP.publisherLimits, ...opts.publisherLimits },
    };
    validate(this.#opts);
    const owner: ConnectionOwner = {
      report: (event, ...args) => this.emit(event, ...args),
      leavePending: (conn) => this.#leavePending(conn),
      gone: (conn) => this.#sessions.delete(conn),
    };
    this.#server = net.createServer((socket) => {
      if (this.#closing) {
        socket.destroy();
        return;
      }
      const bucket = addressBucket(socket.remoteAddress);
      this.#makeRoom(bucket);
      const conn = new RtmpConnection(socket, this.#opts, owner, bucket);
      this.#sessions.add(conn);
      let set = this.#pending.get(bucket);
      if (!set) this.#pending.set(bucket, (set = new Set()));
      set.add(conn);
      this.#pendingCount++;
    });
  }

  /** Evicts pending connections so that one more fits under both caps. */
  #makeRoom(bucket: string): void {
    const own = this.#pending.get(bucket);
    if (own && own.size >= this.#opts.maxPendingPerAddress) pickVictim(own)?.evict();
    if (this.#pendingCount >= this.#opts.maxPendingConnections) {
      // From the address holding the most pending connections (all of them, when several tie).
      let most = 0;
      for (const set of this.#pending.values()) most = Math.max(most, set.size);
      const candidates = [...this.#pending.values()]
        .filter((set) => set.size === most)
        .flatMap((set) => [...set]);
      pickVictim(candidates)?.evict();
    }
  }

  #leavePending(conn: RtmpConnection): void {
    const set = this.#pending.get(conn.bucket);
    if (!set?.delete(conn)) return;
    this.#pendingCount--;
    if (set.size === 0) this.#pending.delete(conn.bucket);
  }

  stats(): RtmpIngestStats {
    let bufferedBytes = 0;
    let pendingBufferedBytes = 0;
    for (const c of this.#sessions) {
      bufferedBytes += c.bufferedBytes;
      if (c.pending) pendingBufferedBytes += c.bufferedBytes;
    }
    return {
      connections: this.#sessions.size,
      pending: this.#pendingCount,
      bufferedBytes,
      pendingBufferedBytes,
    };
  }

  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve((this.#server.address() as net.AddressInfo).port);
      });
    });
  }

  get port(): number | undefined {
    return (this.#server.address() as net.AddressInfo | null)?.port;
  }

  /** Stops listening and closes every connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise((resolve) => {
      for (const s of this.#sessions) s.close('server closing');
      if (!this.#server.listening) resolve();
      else this.#server.close(() => resolve());
    });
    return this.#closing;
  }
}

// Message type ids
const SET_CHUNK_SIZE = 1;
const ABORT = 2;
const ACK = 3;
const USER_CONTROL = 4;
const WINDOW_ACK_SIZE = 5;
const SET_PEER_BANDWIDTH = 6;
const AUDIO = 8;
const VIDEO = 9;
const DATA_AMF3 = 15;
const COMMAND_AMF3 = 17;
const DATA_AMF0 = 18;
const COMMAND_AMF0 = 20;

const OUT_CHUNK_SIZE = 4096;
const HANDSHAKE_SIZE = 1536;
const PUBLISH_STREAM_ID = 1;
/** Basic header (≤ 3) + message header (≤ 11) + extended timestamp (4). */
const MAX_CHUNK_HEADER = 18;
/** First allocation for a message (or its announced length if smaller); doubled as bytes arrive. */
const FIRST_MESSAGE_ALLOC = 4096;
const EMPTY = Buffer.alloc(0);

interface ChunkState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  extended: boolean;
  /** The unfinished message, grown on demand (its own memory, never a view of a socket buffer). */
  buf: Buffer | undefined;
  received: number;
}

/** A pending connection that took no step towards `publish` for this long is stalled (first to evict). */
const STALLED_AFTER_MS = 1000;

/** Steps towards `publish` (a pending connection's progress; each one can be taken once). */
const STEP_C0C1 = 1;
const STEP_HANDSHAKE = 2;
const STEP_CONNECT = 3;
const STEP_CREATE_STREAM = 4;

/** A peer asked for more than its budget allows. */
class RtmpLimitError extends Error {}

/**
 * The pending connection that least looks like an encoder on its way to `publish`: one stalled (no
 * handshake or command step for {@link STALLED_AFTER_MS}: trickling, sitting), the longest stalled
 * first; when every one is still stepping forward, the least advanced, the one whose last step is
 * oldest among equals. A real encoder takes a step every round trip, so it is never stalled, and a
 * newcomer leaves the least advanced rank within its first round trip.
 */
function pickVictim(candidates: Iterable<RtmpConnection>): RtmpConnection | undefined {
  const now = performance.now();
  const stalled = (c: RtmpConnection) => now - c.lastStepAtMs >= STALLED_AFTER_MS;
  let victim: RtmpConnection | undefined;
  for (const c of candidates) {
    if (!victim) victim = c;
    else if (stalled(c) !== stalled(victim)) {
      if (stalled(c)) victim = c;
    } else if (stalled(c)) {
      if (c.lastStepAtMs < victim.lastStepAtMs) victim = c;
    } else if (c.progress < victim.progress) victim = c;
    else if (c.progress === victim.progress && c.lastStepAtMs < victim.lastStepAtMs) victim = c;
  }
  return victim;
}

let sessionCounter = 0;

class RtmpConnection implements IngestSession {
  readonly id = `rtmp-${++sessionCounter}`;
  readonly closed: Promise<{ clean: boolean }>;
  readonly bucket: string;
  hasAudio = false;
  /** How far the connection got towards `publish` (a STEP_*), and when it took its last step. */
  progress = 0;
  lastStepAtMs = performance.now();
  readonly #socket: net.Socket;
  readonly #opts: RtmpIngestOptions;
  readonly #owner: ConnectionOwner;
  readonly #remote: string;
  #limits: RtmpLimits;
  #pending = true;
  #closing = false;
  #phase: 'c0c1' | 'c2' | 'chunks' = 'c0c1';
  #hs: Buffer | undefined = Buffer.alloc(1 + HANDSHAKE_SIZE);
  #hsLen = 0;
  readonly #hdr = Buffer.alloc(MAX_CHUNK_HEADER);
  #hdrLen = 0;
  #current: ChunkState | undefined;
  #chunkLeft = 0;
  #messageBytes = 0;
  #inChunkSize = 128;
  readonly #chunks = new Map<number, ChunkState>();
  #bytesIn = 0;
  #lastAck = 0;
  #peerWindow = 0;
  #app: string | undefined;
  #streamKey: string | undefined;
  #target: RtmpTarget | undefined;
  #state: 'connecting' | 'connected' | 'awaiting-keyframe' | 'publishing' | 'closed' = 'connecting';
  #clean = false;
  #metadata: { [key: string]: AmfValue } | undefined;
  #avcConfig: Buffer | undefined;
  #aacConfig: Buffer | undefined;
  #sawAudio = false;
  #flv: Readable | undefined;
  #flvNeedsKeyframe = true;
  #flvBaseTs = 0;
  #readPaused = false;
  #lastMediaAtMs = Date.now();
  #deadlineTimer: NodeJS.Timeout | undefined;
  #keyframeTimer: NodeJS.Timeout | undefined;
  #resolveClosed!: (v: { clean: boolean }) => void;

  constructor(socket: net.Socket, opts: RtmpIngestOptions, owner: ConnectionOwner, bucket: string) {
    this.#socket = socket;
    this.#opts = opts;
    this.#owner = owner;
    this.bucket = bucket;
    this.#limits = opts.pendingLimits;
    this.#remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    socket.setNoDelay(true);
    socket.setTimeout(opts.idleTimeoutMs);
    socket.on('timeout', () => {
      // Not reading (the encoder lags) is not the peer's silence.
      if (!this.#readPaused) this.#refuse('idle-timeout', 'timed out');
    });
    socket.on('data', (data) => this.#onData(data));
    socket.on('error', (err) => debug('%s socket error: %s', this.id, err.message));
    socket.on('close', () => this.#onClose());
    this.#deadlineTimer = setTimeout(
      () => this.#refuse('publish-deadline', `no accepted publish within ${opts.publishDeadlineMs} ms`, true),
      opts.publishDeadlineMs,
    );
  }

  #step(step: number): void {
    if (step <= this.progress) return;
    this.progress = step;
    this.lastStepAtMs = performance.now();
  }

  get pending(): boolean {
    return this.#pending;
  }

  /** Bytes held for this connection's unfinished messages and handshake. */
  get bufferedBytes(): number {
    return this.#messageBytes + (this.#hs?.length ?? 0);
  }

  /** Closed to make room for a newcomer. */
  evict(): void {
    debug(
      '%s evicted at step %d, last step %d ms ago',
      this.id,
      this.progress,
      Math.round(performance.now() - this.lastStepAtMs),
    );
    this.#refuse(
      'evicted',
      'too many pending connections: this one, stalled or least advanced, made room',
      true,
    );
  }

  // ---- IngestSession ----

  /**
   * When the last audio or video message arrived. While the encoder lags and the socket is not read
   * (backpressure), a silent publisher cannot be told from an active one: it counts as active (now).
   */
  get lastMediaAtMs(): number {
    return this.#readPaused && !this.#closing ? Date.now() : this.#lastMediaAtMs;
  }

  openFlv(): Readable {
    this.#flv?.push(null);
    const stream = new Readable({
      highWaterMark: 4 * 1024 * 1024,
      read: () => {
        if (this.#flv !== stream || !this.#readPaused) return;
        this.#readPaused = false;
        this.#socket.resume();
      },
    });
    this.#flv = stream;
    this.#flvNeedsKeyframe = true;
    const header = Buffer.from([0x46, 0x4c, 0x56, 0x01, this.hasAudio ? 0x05 : 0x01, 0, 0, 0, 9, 0, 0, 0, 0]);
    stream.push(header);
    if (this.#metadata) this.#pushTag(DATA_AMF0, 0, encodeAmf0('onMetaData', this.#metadata));
    if (this.#avcConfig) this.#pushTag(VIDEO, 0, this.#avcConfig);
    if (this.hasAudio && this.#aacConfig) this.#pushTag(AUDIO, 0, this.#aacConfig);
    if (this.#closing || this.#state === 'closed') stream.push(null);
    return stream;
  }

  close(reason: string): void {
    if (this.#closing) return;
    debug('%s closing: %s', this.id, reason);
    this.#shutdown(false);
  }

  // ---- input ----

  #onData(data: Buffer): void {
    if (this.#closing) return;
    this.#bytesIn += data.length;
    try {
      this.#consume(data);
    } catch (err) {
      const message = (err as Error).message;
      if (err instanceof RtmpLimitError) this.#refuse('limit-exceeded', message, true);
      else if (this.#phase === 'c0c1') this.#refuse('handshake-failed', message);
      else this.#refuse('protocol-violation', `protocol error: ${message}`);
      return;
    }
    if (this.#closing) return;
    if (this.#peerWindow > 0 && this.#bytesIn - this.#lastAck >= this.#peerWindow) {
      this.#lastAck = this.#bytesIn;
      const b = Buffer.alloc(4);
      b.writeUInt32BE(this.#bytesIn >>> 0);
      this.#send(2, ACK, 0, b);
    }
  }

  /** Parses as far as `data` goes, copying what must wait for more bytes (never keeping a view of `data`). */
  #consume(data: Buffer): void {
    let off = 0;
    while (off < data.length && !this.#closing) {
      if (this.#phase !== 'chunks') {
        off += this.#handshake(data, off);
      } else if (this.#chunkLeft > 0) {
        const st = this.#current!;
        const n = Math.min(this.#chunkLeft, data.length - off);
        this.#append(st, data, off, n);
        off += n;
        this.#chunkLeft -= n;
        if (this.#chunkLeft === 0) this.#endChunk(st);
      } else {
        const n = Math.min(MAX_CHUNK_HEADER - this.#hdrLen, data.length - off);
        data.copy(this.#hdr, this.#hdrLen, off, off + n);
        const have = this.#hdrLen + n;
        const used = this.#readHeader(this.#hdr.subarray(0, have));
        if (used === 0) {
          this.#hdrLen = have;
          off += n;
        } else {
          off += used - this.#hdrLen;
          this.#hdrLen = 0;
        }
      }
    }
  }

  /** Handshake bytes; returns how many of `data` (from `off`) were taken. */
  #handshake(data: Buffer, off: number): number {
    const hs = this.#hs!;
    if (this.#phase === 'c0c1' && this.#hsLen === 0 && data[off] !== 3)
      throw new Error(`unsupported RTMP version ${data[off]}`);
    const size = this.#phase === 'c0c1' ? 1 + HANDSHAKE_SIZE : HANDSHAKE_SIZE;
    const n = Math.min(size - this.#hsLen, data.length - off);
    data.copy(hs, this.#hsLen, off, off + n);
    this.#hsLen += n;
    if (this.#hsLen < size) return n;
    this.#hsLen = 0;
    if (this.#phase === 'c0c1') {
      const s1 = crypto.randomBytes(HANDSHAKE_SIZE);
      s1.writeUInt32BE(0, 0);
      s1.writeUInt32BE(0, 4);
      // S0 + S1 + S2 (S2 echoes C1): the plain handshake, which OBS and ffmpeg use for rtmp://.
      this.#socket.write(Buffer.concat([Buffer.from([3]), s1, hs.subarray(1)]));
      this.#phase = 'c2';
      this.#step(STEP_C0C1);
    } else {
      this.#hs = undefined;
      this.#phase = 'chunks';
      this.#step(STEP_HANDSHAKE);
    }
    return n;
  }

  /** Parses one chunk header from `b` (which starts with it); returns its length, 0 when more bytes are needed. */
  #readHeader(b: Buffer): number {
    if (b.length < 1) return 0;
    const fmt = b[0]! >> 6;
    let csid = b[0]! & 0x3f;
    let p = 1;
    if (csid === 0) {
      if (b.length < 2) return 0;
      csid = 64 + b[1]!;
      p = 2;
    } else if (csid === 1) {
      if (b.length < 3) return 0;
      csid = 64 + b[1]! + b[2]! * 256;
      p = 3;
    }
    const headerLen = [11, 7, 3, 0][fmt]!;
    if (b.length < p + headerLen) return 0;
    let st = this.#chunks.get(csid);
    if (!st) {
      if (fmt !== 0) throw new Error(`chunk stream ${csid} starts without a full header`);
      if (this.#chunks.size >= this.#limits.maxChunkStreams)
        throw new RtmpLimitError(`more than ${this.#limits.maxChunkStreams} chunk streams`);
      st = {
        timestamp: 0,
        delta: 0,
        length: 0,
        type: 0,
        streamId: 0,
        extended: false,
        buf: undefined,
        received: 0,
      };
    }
    const startsMessage = st.received === 0;
    let tsField = 0;
    let length = st.length;
    let type = st.type;
    let streamId = st.streamId;
    if (fmt <= 2) tsField = b.readUIntBE(p, 3);
    if (fmt <= 1) {
      length = b.readUIntBE(p + 3, 3);
      type = b[p + 6]!;
    }
    if (fmt === 0) streamId = b.readUInt32LE(p + 7);
    p += headerLen;
    const extended = fmt <= 2 ? tsField === 0xffffff : st.extended;
    if (extended) {
      if (b.length < p + 4) return 0;
      tsField = b.readUInt32BE(p);
      p += 4;
    }
    if (length > this.#limits.maxMessageBytes)
      throw new RtmpLimitError(
        `message of ${length} bytes is larger than ${this.#limits.maxMessageBytes}${this.#pending ? ' before publish' : ''}`,
      );
    if (!startsMessage && fmt !== 3) throw new Error('new message header inside an unfinished message');

    // Commit the header.
    if (startsMessage) {
      if (fmt === 0) {
        st.timestamp = tsField;
        st.delta = 0;
      } else if (fmt === 1 || fmt === 2) {
        st.delta = tsField;
        st.timestamp += tsField;
      } else st.timestamp += st.delta;
    }
    st.length = length;
    st.type = type;
    st.streamId = streamId;
    st.extended = extended;
    this.#chunks.set(csid, st);
    this.#current = st;
    this.#chunkLeft = Math.min(this.#inChunkSize, length - st.received);
    if (this.#chunkLeft === 0) this.#endChunk(st);
    return p;
  }

  /** Copies chunk payload into its message, growing the message's buffer within the budget. */
  #append(st: ChunkState, data: Buffer, off: number, n: number): void {
    const need = st.received + n;
    let buf = st.buf;
    if (!buf || need > buf.length) {
      const had = buf?.length ?? 0;
      const capacity = Math.min(st.length, Math.max(need, had * 2, FIRST_MESSAGE_ALLOC));
      const held = this.bufferedBytes + capacity - had;
      if (held > this.#limits.maxBufferedBytes)
        throw new RtmpLimitError(
          `unfinished messages would hold ${held} bytes (budget ${this.#limits.maxBufferedBytes}${this.#pending ? ' before publish' : ''})`,
        );
      const grown = Buffer.allocUnsafeSlow(capacity);
      if (buf) buf.copy(grown, 0, 0, st.received);
      this.#messageBytes += capacity - had;
      st.buf = buf = grown;
    }
    data.copy(buf, st.received, off, off + n);
    st.received = need;
  }

  #endChunk(st: ChunkState): void {
    if (st.received < st.length) return;
    // Capacity never exceeds the announced length, so a finished message fills its buffer exactly.
    const payload = st.buf ?? EMPTY;
    this.#release(st);
    this.#onMessage(st.type, st.streamId, st.timestamp, payload);
  }

  #release(st: ChunkState): void {
    this.#messageBytes -= st.buf?.length ?? 0;
    st.buf = undefined;
    st.received = 0;
  }

  #onMessage(type: number, streamId: number, timestamp: number, payload: Buffer): void {
    switch (type) {
      case SET_CHUNK_SIZE: {
        if (payload.length < 4) throw new Error('short SetChunkSize');
        const size = payload.readUInt32BE(0) & 0x7fffffff;
        if (size < 1) throw new Error(`bad chunk size ${size}`);
        if (size > this.#limits.maxChunkSizeBytes)
          throw new RtmpLimitError(
            `chunk size ${size} is larger than ${this.#limits.maxChunkSizeBytes}${this.#pending ? ' before publish' : ''}`,
          );
        this.#inChunkSize = size;
        return;
      }
      case ABORT: {
        const st = payload.length >= 4 ? this.#chunks.get(payload.readUInt32BE(0)) : undefined;
        if (st) this.#release(st);
        return;
      }
      case WINDOW_ACK_SIZE:
        if (payload.length >= 4) this.#peerWindow = payload.readUInt32BE(0);
        return;
      case ACK:
      case SET_PEER_BANDWIDTH:
        return;
      case USER_CONTROL:
        if (payload.length >= 6 && payload.readUInt16BE(0) === 6) {
          // PingRequest → PingResponse
          const r = Buffer.alloc(6);
          r.writeUInt16BE(7, 0);
          payload.copy(r, 2, 2, 6);
          this.#send(2, USER_CONTROL, 0, r);
        }
        return;
      case COMMAND_AMF3:
        return this.#onCommand(streamId, decodeAmf0(payload.subarray(1)));
      case COMMAND_AMF0:
        return this.#onCommand(streamId, decodeAmf0(payload));
      case DATA_AMF3:
        return this.#onData0(decodeAmf0(payload.subarray(1)));
      case DATA_AMF0:
        return this.#onData0(decodeAmf0(payload));
      case AUDIO:
      case VIDEO:
        return this.#onMedia(type, timestamp, payload);
      default:
        debug('%s ignoring message type %d', this.id, type);
    }
  }

  #onCommand(streamId: number, values: AmfValue[]): void {
    const [name, txn] = values;
    if (typeof name !== 'string') throw new Error('command without a name');
    const txnId = typeof txn === 'number' ? txn : 0;
    debug('%s command %s', this.id, name);
    switch (name) {
      case 'connect': {
        const obj = values[2];
        const app =
          typeof obj === 'object' && obj !== null && !Array.isArray(obj) && !(obj instanceof Date)
            ? obj.app
            : '';
        this.#app = typeof app === 'string' ? app.replace(/\/+$/, '') : '';
        if (this.#app !== this.#opts.app) {
          this.#sendCommand(0, '_error', txnId, null, {
            level: 'error',
            code: 'NetConnection.Connect.Rejected',
            description: `unknown application "${this.#app}" (use rtmp://host/${this.#opts.app}/<streamKey>)`,
          });
          this.#refuse('wrong-app', `unknown application ${this.#app}`);
          return;
        }
        const ws = Buffer.alloc(4);
        ws.writeUInt32BE(5_000_000);
        this.#send(2, WINDOW_ACK_SIZE, 0, ws);
        this.#send(2, SET_PEER_BANDWIDTH, 0, Buffer.concat([ws, Buffer.from([2])]));
        const cs = Buffer.alloc(4);
        cs.writeUInt32BE(OUT_CHUNK_SIZE);
        this.#send(2, SET_CHUNK_SIZE, 0, cs);
        this.#outChunkSize = OUT_CHUNK_SIZE;
        this.#sendCommand(
          0,
          '_result',
          txnId,
          { fmsVer: 'FMS/3,0,1,123', capabilities: 31 },
          {
            level: 'status',
            code: 'NetConnection.Connect.Success',
            description: 'Connection succeeded.',
            objectEncoding: 0,
          },
        );
        this.#state = 'connected';
        this.#step(STEP_CONNECT);
        return;
      }
      case 'releaseStream':
      case 'FCPublish':
        this.#sendCommand(0, '_result', txnId, null, undefined);
        return;
      case 'createStream':
        this.#sendCommand(0, '_result', txnId, null, PUBLISH_STREAM_ID);
        this.#step(STEP_CREATE_STREAM);
        return;
      case 'publish':
        return this.#onPublish(streamId, values[3]);
      case 'play':
        this.#sendStatus(
          streamId,
          'error',
          'NetStream.Play.Failed',
          'this server only ingests; watch over HLS',
        );
        this.#refuse('play-refused', 'play requested');
        return;
      case 'FCUnpublish':
      case 'deleteStream':
      case 'closeStream':
        this.#clean = true;
        this.close('publisher unpublished');
        return;
      default:
        return; // _checkbw, getStreamLength, … : harmless
    }
  }

  #onPublish(streamId: number, rawName: AmfValue): void {
    if (this.#state !== 'connected') throw new Error('publish before connect or twice');
    const key = typeof rawName === 'string' ? rawName.split('?')[0]! : '';
    const target = key ? this.#opts.resolve(key) : undefined;
    if (!target) {
      this.#sendStatus(streamId, 'error', 'NetStream.Publish.BadName', 'invalid stream key');
      this.#refuse('wrong-stream-key', 'wrong stream key');
      return;
    }
    this.#streamKey = key;
    this.#target = target;
    this.#state = 'awaiting-keyframe';
    // Authenticated: out of the pending caps and deadline, under the publisher's limits.
    this.#pending = false;
    this.#limits = this.#opts.publisherLimits;
    clearTimeout(this.#deadlineTimer);
    this.#owner.leavePending(this);
    this.#lastMediaAtMs = Date.now();
    this.#sendStatus(streamId, 'status', 'NetStream.Publish.Start', 'publishing');
    this.#keyframeTimer = setTimeout(
      () => this.#refuse('no-keyframe', 'no video keyframe'),
      this.#opts.firstKeyframeTimeoutMs,
    );
  }

  #onData0(values: AmfValue[]): void {
    const [name, ...rest] = values;
    const [first, second] = name === '@setDataFrame' ? rest : values;
    if (first === 'onMetaData' && typeof second === 'object' && second !== null && !Array.isArray(second))
      this.#metadata = second as { [key: string]: AmfValue };
  }

  #onMedia(type: number, timestamp: number, payload: Buffer): void {
    if (this.#state !== 'awaiting-keyframe' && this.#state !== 'publishing') return;
    if (payload.length === 0) return;
    this.#lastMediaAtMs = Date.now();
    const isVideo = type === VIDEO;
    if (isVideo && (payload[0]! & 0x0f) === 7 && payload[1] === 0) this.#avcConfig = payload;
    if (!isVideo && payload[0]! >> 4 === 10 && payload[1] === 0) this.#aacConfig = payload;
    if (!isVideo) this.#sawAudio = true;
    const frameType = (payload[0]! >> 4) & 0x07;
    const keyframe = isVideo && frameType === 1 && !((payload[0]! & 0x0f) === 7 && payload[1] === 0);
    if (this.#state === 'awaiting-keyframe') {
      if (!keyframe) return;
      // Classic FLV video codecs ffmpeg decodes (H.263, VP6, VP6A, H.264); enhanced RTMP (HEVC, AV1…) is not.
      const codec = payload[0]! & 0x0f;
      if (payload[0]! & 0x80 || ![2, 4, 5, 7].includes(codec)) {
        this.#sendStatus(
          PUBLISH_STREAM_ID,
          'error',
          'NetStream.Publish.Failed',
          'unsupported video codec: send H.264',
        );
        this.#refuse(
          'unsupported-codec',
          `unsupported video codec ${payload[0]! & 0x80 ? '(enhanced RTMP)' : codec}`,
        );
        return;
      }
      clearTimeout(this.#keyframeTimer);
      const meta = this.#metadata;
      this.hasAudio = meta ? meta.audiocodecid !== undefined || this.#sawAudio : this.#sawAudio;
      this.#owner.report('publish', {
        sessionId: this.id,
        remote: this.#remote,
        streamKey: this.#streamKey!,
      });
      if (this.#closing) return;
      this.#state = 'publishing';
      if (!this.#target!.acceptPublisher(this)) {
        this.#state = 'awaiting-keyframe'; // so that the refusal is reported as one
        this.#sendStatus(
          PUBLISH_STREAM_ID,
          'error',
          'NetStream.Publish.BadName',
          'channel already has a publisher',
        );
        this.#refuse('channel-busy', 'channel busy');
        return;
      }
    }
    if (!this.#flv) return;
    if (this.#flvNeedsKeyframe) {
      if (!keyframe) return;
      this.#flvNeedsKeyframe = false;
      this.#flvBaseTs = timestamp;
    }
    if (!isVideo && !this.hasAudio) return;
    this.#pushTag(type, Math.max(0, timestamp - this.#flvBaseTs), payload);
  }

  #pushTag(type: number, timestamp: number, data: Buffer): void {
    const flv = this.#flv;
    if (!flv) return;
    const header = Buffer.alloc(11);
    header[0] = type;
    header.writeUIntBE(data.length, 1, 3);
    header.writeUIntBE(timestamp & 0xffffff, 4, 3);
    header[7] = (timestamp >>> 24) & 0xff;
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32BE(11 + data.length);
    if (!flv.push(Buffer.concat([header, data, trailer])) && !this.#readPaused) {
      // The encoder lags: stop reading until it catches up (the peer's TCP window holds the rest).
      this.#readPaused = true;
      this.#socket.pause();
    }
  }

  // ---- output ----

  #outChunkSize = 128;

  #send(csid: number, type: number, streamId: number, payload: Buffer): void {
    if (this.#socket.destroyed || this.#closing) return;
    const parts: Buffer[] = [];
    const h = Buffer.alloc(12);
    h[0] = csid & 0x3f;
    h.writeUIntBE(0, 1, 3);
    h.writeUIntBE(payload.length, 4, 3);
    h[7] = type;
    h.writeUInt32LE(streamId, 8);
    parts.push(h);
    for (let off = 0; off < payload.length; off += this.#outChunkSize) {
      if (off > 0) parts.push(Buffer.from([0xc0 | (csid & 0x3f)]));
      parts.push(payload.subarray(off, off + this.#outChunkSize));
    }
    this.#socket.write(Buffer.concat(parts));
    if (this.#socket.writableLength > this.#limits.maxWriteBufferBytes)
      this.#refuse(
        'limit-exceeded',
        `${this.#socket.writableLength} bytes of replies unread (budget ${this.#limits.maxWriteBufferBytes})`,
        true,
      );
  }

  #sendCommand(streamId: number, ...values: AmfValue[]): void {
    this.#send(3, COMMAND_AMF0, streamId, encodeAmf0(...values));
  }

  #sendStatus(streamId: number, level: string, code: string, description: string): void {
    this.#sendCommand(streamId, 'onStatus', 0, null, { level, code, description });
  }

  /** Turns the connection away; `hard` drops it at once (nothing left to tell the peer). */
  #refuse(code: RtmpRefusalCode, reason: string, hard = false): void {
    if (this.#closing) return;
    const wasPublishing = this.#state === 'publishing';
    debug('%s refused (%s): %s', this.id, code, reason);
    this.#shutdown(hard);
    if (!wasPublishing)
      this.#owner.report('refused', { sessionId: this.id, remote: this.#remote, code, reason });
  }

  /** Stops taking input and releases everything held; the socket follows (gracefully unless `hard`). */
  #shutdown(hard: boolean): void {
    this.#closing = true;
    this.#owner.leavePending(this);
    this.#releaseAll();
    this.#flv?.push(null);
    if (hard) this.#socket.destroy();
    else {
      this.#socket.end();
      setTimeout(() => this.#socket.destroy(), 1000).unref();
    }
  }

  #releaseAll(): void {
    clearTimeout(this.#deadlineTimer);
    clearTimeout(this.#keyframeTimer);
    this.#chunks.clear();
    this.#current = undefined;
    this.#chunkLeft = 0;
    this.#messageBytes = 0;
    this.#hs = undefined;
  }

  #onClose(): void {
    this.#closing = true;
    this.#owner.leavePending(this);
    this.#owner.gone(this);
    this.#releaseAll();
    const published = this.#state === 'publishing';
    this.#state = 'closed';
    this.#flv?.push(null);
    this.#resolveClosed({ clean: this.#clean });
    if (published) this.#owner.report('closed', { sessionId: this.id, clean: this.#clean });
  }
}
