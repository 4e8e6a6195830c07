/**
 * RTMP ingest for OBS and other encoders: `rtmp://HOST:1935/live/<streamKey>`.
 *
 * A small RTMP server (handshake, chunk streams, AMF0 commands) that accepts *publishers only*. The
 * stream key is checked at `publish`, before any media is taken: a wrong key gets
 * `NetStream.Publish.BadName` and the connection is closed, so nothing is published. Accepted media
 * is re-muxed to FLV and handed to the channel's encoder on its stdin (see `IngestSession`).
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import createDebug from 'debug';
import { TypedEmitter } from '../../protocol/index.ts';
import type { IngestSession } from '../channel.ts';
import { decodeAmf0, encodeAmf0, type AmfValue } from './amf0.ts';

const debug = createDebug('peertv:source:rtmp');

export interface RtmpTarget {
  acceptPublisher(session: IngestSession): boolean;
}

export interface RtmpIngestOptions {
  /** Finds the channel a stream key publishes to (compare keys in constant time). */
  resolve: (streamKey: string) => RtmpTarget | undefined;
  /** RTMP application name in the URL. */
  app: string;
  handshakeTimeoutMs: number;
  /** A publisher silent for this long is dropped. */
  idleTimeoutMs: number;
  /** How long after `publish` the first video keyframe may take. */
  firstKeyframeTimeoutMs: number;
  maxMessageBytes: number;
  maxConnections: number;
}

export const DEFAULT_RTMP: Omit<RtmpIngestOptions, 'resolve'> = {
  app: 'live',
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 20_000,
  firstKeyframeTimeoutMs: 15_000,
  maxMessageBytes: 16 * 1024 * 1024,
  maxConnections: 32,
};

export type RtmpIngestEvents = {
  publish: (info: { sessionId: string; remote: string; streamKey: string }) => void;
  refused: (info: { remote: string; reason: string }) => void;
  closed: (info: { sessionId: string; clean: boolean }) => void;
};

/** Constant-time comparison of stream keys. */
export function streamKeyMatches(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

export class RtmpIngestServer extends TypedEmitter<RtmpIngestEvents> {
  readonly #opts: RtmpIngestOptions;
  readonly #server: net.Server;
  readonly #sessions = new Set<RtmpConnection>();

  constructor(opts: Partial<RtmpIngestOptions> & Pick<RtmpIngestOptions, 'resolve'>) {
    super();
    this.#opts = { ...DEFAULT_RTMP, ...opts };
    this.#server = net.createServer((socket) => {
      if (this.#sessions.size >= this.#opts.maxConnections) {
        this.emit('refused', { remote: `${socket.remoteAddress}`, reason: 'too many connections' });
        socket.destroy();
        return;
      }
      const conn = new RtmpConnection(socket, this.#opts, this);
      this.#sessions.add(conn);
      socket.on('close', () => this.#sessions.delete(conn));
    });
  }

  /** @internal */
  report<E extends keyof RtmpIngestEvents>(event: E, ...args: Parameters<RtmpIngestEvents[E]>): void {
    this.emit(event, ...args);
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

  close(): Promise<void> {
    for (const s of this.#sessions) s.close('server closing');
    return new Promise((resolve) => this.#server.close(() => resolve()));
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

interface ChunkState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  extended: boolean;
  parts: Buffer[];
  received: number;
}

let sessionCounter = 0;

class RtmpConnection implements IngestSession {
  readonly id = `rtmp-${++sessionCounter}`;
  readonly closed: Promise<{ clean: boolean }>;
  hasAudio = false;
  readonly #socket: net.Socket;
  readonly #opts: RtmpIngestOptions;
  readonly #server: RtmpIngestServer;
  readonly #remote: string;
  #phase: 'c0c1' | 'c2' | 'chunks' = 'c0c1';
  #buf: Buffer = Buffer.alloc(0);
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
  #keyframeTimer: NodeJS.Timeout | undefined;
  #resolveClosed!: (v: { clean: boolean }) => void;

  constructor(socket: net.Socket, opts: RtmpIngestOptions, server: RtmpIngestServer) {
    this.#socket = socket;
    this.#opts = opts;
    this.#server = server;
    this.#remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    socket.setNoDelay(true);
    socket.setTimeout(opts.handshakeTimeoutMs);
    socket.on('timeout', () => this.#refuse('timed out'));
    socket.on('data', (data) => this.#onData(data));
    socket.on('error', (err) => debug('%s socket error: %s', this.id, err.message));
    socket.on('close', () => this.#onClose());
  }

  // ---- IngestSession ----

  openFlv(): Readable {
    this.#flv?.push(null);
    const stream = new Readable({
      highWaterMark: 4 * 1024 * 1024,
      read: () => this.#socket.resume(),
    });
    this.#flv = stream;
    this.#flvNeedsKeyframe = true;
    const header = Buffer.from([0x46, 0x4c, 0x56, 0x01, this.hasAudio ? 0x05 : 0x01, 0, 0, 0, 9, 0, 0, 0, 0]);
    stream.push(header);
    if (this.#metadata) this.#pushTag(DATA_AMF0, 0, encodeAmf0('onMetaData', this.#metadata));
    if (this.#avcConfig) this.#pushTag(VIDEO, 0, this.#avcConfig);
    if (this.hasAudio && this.#aacConfig) this.#pushTag(AUDIO, 0, this.#aacConfig);
    if (this.#state === 'closed') stream.push(null);
    return stream;
  }

  close(reason: string): void {
    debug('%s closing: %s', this.id, reason);
    this.#flv?.push(null);
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  // ---- input ----

  #onData(data: Buffer): void {
    this.#bytesIn += data.length;
    this.#buf = this.#buf.length === 0 ? data : Buffer.concat([this.#buf, data]);
    try {
      this.#process();
    } catch (err) {
      this.#refuse(`protocol error: ${(err as Error).message}`);
      return;
    }
    if (this.#peerWindow > 0 && this.#bytesIn - this.#lastAck >= this.#peerWindow) {
      this.#lastAck = this.#bytesIn;
      const b = Buffer.alloc(4);
      b.writeUInt32BE(this.#bytesIn >>> 0);
      this.#send(2, ACK, 0, b);
    }
  }

  #process(): void {
    for (;;) {
      if (this.#state === 'closed') return;
      if (this.#phase === 'c0c1') {
        if (this.#buf.length < 1 + HANDSHAKE_SIZE) return;
        if (this.#buf[0] !== 3) throw new Error(`unsupported RTMP version ${this.#buf[0]}`);
        const c1 = this.#buf.subarray(1, 1 + HANDSHAKE_SIZE);
        const s1 = crypto.randomBytes(HANDSHAKE_SIZE);
        s1.writeUInt32BE(0, 0);
        s1.writeUInt32BE(0, 4);
        // S0 + S1 + S2 (S2 echoes C1): the plain handshake, which OBS and ffmpeg use for rtmp://.
        this.#socket.write(Buffer.concat([Buffer.from([3]), s1, c1]));
        this.#buf = this.#buf.subarray(1 + HANDSHAKE_SIZE);
        this.#phase = 'c2';
      } else if (this.#phase === 'c2') {
        if (this.#buf.length < HANDSHAKE_SIZE) return;
        this.#buf = this.#buf.subarray(HANDSHAKE_SIZE);
        this.#phase = 'chunks';
        this.#socket.setTimeout(this.#opts.idleTimeoutMs);
      } else if (!this.#readChunk()) return;
    }
  }

  /** Parses one chunk; false when more bytes are needed. */
  #readChunk(): boolean {
    const b = this.#buf;
    if (b.length < 1) return false;
    const fmt = b[0]! >> 6;
    let csid = b[0]! & 0x3f;
    let p = 1;
    if (csid === 0) {
      if (b.length < 2) return false;
      csid = 64 + b[1]!;
      p = 2;
    } else if (csid === 1) {
      if (b.length < 3) return false;
      csid = 64 + b[1]! + b[2]! * 256;
      p = 3;
    }
    const headerLen = [11, 7, 3, 0][fmt]!;
    if (b.length < p + headerLen) return false;
    let st = this.#chunks.get(csid);
    if (!st) {
      if (fmt !== 0) throw new Error(`chunk stream ${csid} starts without a full header`);
      st = {
        timestamp: 0,
        delta: 0,
        length: 0,
        type: 0,
        streamId: 0,
        extended: false,
        parts: [],
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
      if (b.length < p + 4) return false;
      tsField = b.readUInt32BE(p);
      p += 4;
    }
    if (length > this.#opts.maxMessageBytes) throw new Error(`message of ${length} bytes is too large`);
    if (!startsMessage && fmt !== 3) throw new Error('new message header inside an unfinished message');
    const payloadLen = Math.min(this.#inChunkSize, length - st.received);
    if (b.length < p + payloadLen) return false;

    // Commit the chunk.
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
    st.parts.push(b.subarray(p, p + payloadLen));
    st.received += payloadLen;
    this.#buf = b.subarray(p + payloadLen);
    if (st.received === st.length) {
      const payload = st.parts.length === 1 ? st.parts[0]! : Buffer.concat(st.parts);
      st.parts = [];
      st.received = 0;
      this.#onMessage(st.type, st.streamId, st.timestamp, Buffer.from(payload));
    }
    return true;
  }

  #onMessage(type: number, streamId: number, timestamp: number, payload: Buffer): void {
    switch (type) {
      case SET_CHUNK_SIZE: {
        if (payload.length < 4) throw new Error('short SetChunkSize');
        const size = payload.readUInt32BE(0) & 0x7fffffff;
        if (size < 1 || size > 0xffffff) throw new Error(`bad chunk size ${size}`);
        this.#inChunkSize = size;
        return;
      }
      case ABORT:
        if (payload.length >= 4) this.#chunks.delete(payload.readUInt32BE(0));
        return;
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
          this.#refuse(`unknown application ${this.#app}`);
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
        return;
      }
      case 'releaseStream':
      case 'FCPublish':
        this.#sendCommand(0, '_result', txnId, null, undefined);
        return;
      case 'createStream':
        this.#sendCommand(0, '_result', txnId, null, PUBLISH_STREAM_ID);
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
        this.#refuse('play requested');
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
      this.#refuse('wrong stream key');
      return;
    }
    this.#streamKey = key;
    this.#target = target;
    this.#state = 'awaiting-keyframe';
    this.#sendStatus(streamId, 'status', 'NetStream.Publish.Start', 'publishing');
    this.#keyframeTimer = setTimeout(
      () => this.#refuse('no video keyframe'),
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
        this.#refuse(`unsupported video codec ${payload[0]! & 0x80 ? '(enhanced RTMP)' : codec}`);
        return;
      }
      clearTimeout(this.#keyframeTimer);
      const meta = this.#metadata;
      this.hasAudio = meta ? meta.audiocodecid !== undefined || this.#sawAudio : this.#sawAudio;
      this.#state = 'publishing';
      this.#server.report('publish', {
        sessionId: this.id,
        remote: this.#remote,
        streamKey: this.#streamKey!,
      });
      if (!this.#target!.acceptPublisher(this)) {
        this.#sendStatus(
          PUBLISH_STREAM_ID,
          'error',
          'NetStream.Publish.BadName',
          'channel already has a publisher',
        );
        this.#refuse('channel busy');
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
    if (!flv.push(Buffer.concat([header, data, trailer]))) this.#socket.pause();
  }

  // ---- output ----

  #outChunkSize = 128;

  #send(csid: number, type: number, streamId: number, payload: Buffer): void {
    if (this.#socket.destroyed) return;
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
  }

  #sendCommand(streamId: number, ...values: AmfValue[]): void {
    this.#send(3, COMMAND_AMF0, streamId, encodeAmf0(...values));
  }

  #sendStatus(streamId: number, level: string, code: string, description: string): void {
    this.#sendCommand(streamId, 'onStatus', 0, null, { level, code, description });
  }

  #refuse(reason: string): void {
    if (this.#state === 'closed') return;
    const wasPublishing = this.#state === 'publishing';
    if (!wasPublishing) this.#server.report('refused', { remote: this.#remote, reason });
    debug('%s refused: %s', this.id, reason);
    this.close(reason);
  }

  #onClose(): void {
    clearTimeout(this.#keyframeTimer);
    const published = this.#state === 'publishing';
    this.#state = 'closed';
    this.#flv?.push(null);
    this.#resolveClosed({ clean: this.#clean });
    if (published) this.#server.report('closed', { sessionId: this.id, clean: this.#clean });
  }
}
