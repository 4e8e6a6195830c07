/**
 * One RTMP connection, from accept to close: the handshake, the connect → createStream → publish state
 * machine (the stream key is checked at `publish`, before any media is taken), the deadlines (publish,
 * idle, first keyframe), the limits in force (pending, then publisher), and the hand-over of accepted
 * media to the channel's encoder as FLV (see {@link FlvRemuxer}).
 */
import type net from 'node:net';
import type { Readable } from 'node:stream';
import createDebug from 'debug';
import type { IngestSession } from '../channel.ts';
import { decodeAmf0, encodeAmf0, type AmfValue } from './amf0.ts';
import {
  ACK,
  AUDIO,
  ChunkReader,
  COMMAND_AMF0,
  COMMAND_AMF3,
  DATA_AMF0,
  DATA_AMF3,
  DEFAULT_CHUNK_SIZE,
  encodeChunks,
  RtmpLimitError,
  SET_CHUNK_SIZE,
  SET_PEER_BANDWIDTH,
  USER_CONTROL,
  VIDEO,
  WINDOW_ACK_SIZE,
  type RtmpMessage,
} from './chunks.ts';
import { FlvRemuxer, isKeyframe } from './flv.ts';
import { RtmpHandshake } from './handshake.ts';
import type {
  RtmpIngestEvents,
  RtmpIngestOptions,
  RtmpLimits,
  RtmpRefusalCode,
  RtmpTarget,
} from './options.ts';

const debug = createDebug('peertv:source:rtmp');

const OUT_CHUNK_SIZE = 4096;
const PUBLISH_STREAM_ID = 1;
const BEFORE_PUBLISH = ' before publish';

/** Steps towards `publish` (a pending connection's progress; each one can be taken once). */
export const STEP_C0C1 = 1;
export const STEP_HANDSHAKE = 2;
export const STEP_CONNECT = 3;
export const STEP_CREATE_STREAM = 4;

/** What a session tells the server that owns it. */
export interface SessionOwner {
  report<E extends keyof RtmpIngestEvents>(event: E, ...args: Parameters<RtmpIngestEvents[E]>): void;
  /** The session is authenticated or closing: it no longer counts as pending. */
  leavePending(session: RtmpSession): void;
  gone(session: RtmpSession): void;
}

let sessionCounter = 0;

export class RtmpSession implements IngestSession {
  readonly id = `rtmp-${++sessionCounter}`;
  readonly closed: Promise<{ clean: boolean }>;
  /** The address bucket it counts against while pending. */
  readonly bucket: string;
  /** How far the connection got towards `publish` (a STEP_*), and when it took its last step. */
  progress = 0;
  lastStepAtMs = performance.now();
  readonly #socket: net.Socket;
  readonly #opts: RtmpIngestOptions;
  readonly #owner: SessionOwner;
  readonly #remote: string;
  readonly #handshake = new RtmpHandshake();
  readonly #reader: ChunkReader;
  readonly #flv: FlvRemuxer;
  #limits: RtmpLimits;
  #pending = true;
  #closing = false;
  #bytesIn = 0;
  #lastAck = 0;
  #peerWindow = 0;
  #outChunkSize = DEFAULT_CHUNK_SIZE;
  #streamKey: string | undefined;
  #target: RtmpTarget | undefined;
  #state: 'connecting' | 'connected' | 'awaiting-keyframe' | 'publishing' | 'closed' = 'connecting';
  #clean = false;
  #lastMediaAtMs = Date.now();
  #deadlineTimer: NodeJS.Timeout | undefined;
  #keyframeTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;
  #resolveClosed!: (v: { clean: boolean }) => void;

  constructor(socket: net.Socket, opts: RtmpIngestOptions, owner: SessionOwner, bucket: string) {
    this.#socket = socket;
    this.#opts = opts;
    this.#owner = owner;
    this.bucket = bucket;
    this.#limits = opts.pendingLimits;
    this.#reader = new ChunkReader(opts.pendingLimits, (m) => this.#onMessage(m), BEFORE_PUBLISH);
    this.#flv = new FlvRemuxer({
      pause: () => socket.pause(),
      resume: () => socket.resume(),
    });
    this.#remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    socket.setNoDelay(true);
    socket.setTimeout(opts.idleTimeoutMs);
    socket.on('timeout', () => {
      // Not reading (the encoder lags) is not the peer's silence.
      if (!this.#flv.readPaused) this.#refuse('idle-timeout', 'timed out');
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
    return this.#reader.bufferedBytes + this.#handshake.bufferedBytes;
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

  get hasAudio(): boolean {
    return this.#flv.hasAudio;
  }

  /**
   * When the last audio or video message arrived. While the encoder lags and the socket is not read
   * (backpressure), a silent publisher cannot be told from an active one: it counts as active (now).
   */
  get lastMediaAtMs(): number {
    return this.#flv.readPaused && !this.#closing ? Date.now() : this.#lastMediaAtMs;
  }

  openFlv(): Readable {
    return this.#flv.open(this.#closing || this.#state === 'closed');
  }

  /**
   * Closes the connection: no more input is taken, everything held is released, the socket is ended
   * (and destroyed a moment later if the peer does not close it). Idempotent.
   */
  destroy(reason: string): void {
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
      else if (this.#handshake.phase === 'c0c1') this.#refuse('handshake-failed', message);
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
    while (off < data.length && !this.#closing && this.#handshake.phase !== 'done') {
      const phase = this.#handshake.phase;
      off += this.#handshake.take(data, off, (reply) => this.#socket.write(reply));
      if (this.#handshake.phase !== phase)
        this.#step(this.#handshake.phase === 'c2' ? STEP_C0C1 : STEP_HANDSHAKE);
    }
    if (off < data.length && !this.#closing) this.#reader.push(data, off);
  }

  #onMessage({ type, streamId, timestamp, payload }: RtmpMessage): void {
    switch (type) {
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
        return this.#flv.onData(decodeAmf0(payload.subarray(1)));
      case DATA_AMF0:
        return this.#flv.onData(decodeAmf0(payload));
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
      case 'connect':
        return this.#onConnect(txnId, values[2]);
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
        this.destroy('publisher unpublished');
        return;
      default:
        return; // _checkbw, getStreamLength, … : harmless
    }
  }

  #onConnect(txnId: number, obj: AmfValue): void {
    const rawApp =
      typeof obj === 'object' && obj !== null && !Array.isArray(obj) && !(obj instanceof Date) ? obj.app : '';
    const app = typeof rawApp === 'string' ? rawApp.replace(/\/+$/, '') : '';
    if (app !== this.#opts.app) {
      this.#sendCommand(0, '_error', txnId, null, {
        level: 'error',
        code: 'NetConnection.Connect.Rejected',
        description: `unknown application "${app}" (use rtmp://host/${this.#opts.app}/<streamKey>)`,
      });
      this.#refuse('wrong-app', `unknown application ${app}`);
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
    this.#reader.setLimits(this.#limits);
    clearTimeout(this.#deadlineTimer);
    this.#owner.leavePending(this);
    this.#lastMediaAtMs = Date.now();
    this.#sendStatus(streamId, 'status', 'NetStream.Publish.Start', 'publishing');
    this.#keyframeTimer = setTimeout(
      () => this.#refuse('no-keyframe', 'no video keyframe'),
      this.#opts.firstKeyframeTimeoutMs,
    );
  }

  #onMedia(type: number, timestamp: number, payload: Buffer): void {
    if (this.#state !== 'awaiting-keyframe' && this.#state !== 'publishing') return;
    if (payload.length === 0) return;
    this.#lastMediaAtMs = Date.now();
    this.#flv.noteConfig(type, payload);
    const keyframe = isKeyframe(type, payload);
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
      this.#flv.settleAudio();
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
    this.#flv.media(type, timestamp, payload, keyframe);
  }

  // ---- output ----

  #send(csid: number, type: number, streamId: number, payload: Buffer): void {
    if (this.#socket.destroyed || this.#closing) return;
    this.#socket.write(encodeChunks(csid, type, streamId, payload, this.#outChunkSize));
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

  // ---- teardown ----

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
    this.#flv.end();
    if (hard) this.#socket.destroy();
    else {
      this.#socket.end();
      this.#lingerTimer = setTimeout(() => this.#socket.destroy(), 1000);
      this.#lingerTimer.unref();
    }
  }

  #releaseAll(): void {
    clearTimeout(this.#deadlineTimer);
    clearTimeout(this.#keyframeTimer);
    this.#reader.release();
    this.#handshake.release();
  }

  #onClose(): void {
    this.#closing = true;
    clearTimeout(this.#lingerTimer);
    this.#owner.leavePending(this);
    this.#owner.gone(this);
    this.#releaseAll();
    const published = this.#state === 'publishing';
    this.#state = 'closed';
    this.#flv.end();
    this.#resolveClosed({ clean: this.#clean });
    if (published) this.#owner.report('closed', { sessionId: this.id, clean: this.#clean });
  }
}
