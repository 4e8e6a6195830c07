/**
 * The RTMP chunk stream: splits a connection's bytes into chunks, reassembles them into messages, and
 * serializes outgoing messages into chunks. Chunk-stream control (SetChunkSize, Abort) is handled here;
 * every other message is handed on whole.
 *
 * The reader works under {@link RtmpLimits}: the largest message a peer may announce, the largest chunk
 * size it may set, how many chunk streams it may open and how many bytes its unfinished messages may
 * hold together. Unfinished messages are assembled in one buffer each, grown on demand (never sized
 * from the length a peer announces), and never keep a view of the bytes they were read from.
 */
import type { RtmpLimits } from './options.ts';

// Message type ids
export const SET_CHUNK_SIZE = 1;
export const ABORT = 2;
export const ACK = 3;
export const USER_CONTROL = 4;
export const WINDOW_ACK_SIZE = 5;
export const SET_PEER_BANDWIDTH = 6;
export const AUDIO = 8;
export const VIDEO = 9;
export const DATA_AMF3 = 15;
export const COMMAND_AMF3 = 17;
export const DATA_AMF0 = 18;
export const COMMAND_AMF0 = 20;

/** The chunk size both sides start with, until a SetChunkSize. */
export const DEFAULT_CHUNK_SIZE = 128;
/** Basic header (≤ 3) + message header (≤ 11) + extended timestamp (4). */
const MAX_CHUNK_HEADER = 18;
/** First allocation for a message (or its announced length if smaller); doubled as bytes arrive. */
const FIRST_MESSAGE_ALLOC = 4096;
const EMPTY = Buffer.alloc(0);

/** A peer asked for more than its budget allows. */
export class RtmpLimitError extends Error {
  override name = 'RtmpLimitError';
}

/** A whole message, reassembled from its chunks. */
export interface RtmpMessage {
  type: number;
  streamId: number;
  timestamp: number;
  payload: Buffer;
}

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

/**
 * Reads chunks into messages. `push` parses as far as the bytes go and keeps (copies) what must wait
 * for more; malformed input throws an Error, input beyond the limits an {@link RtmpLimitError}.
 */
export class ChunkReader {
  readonly #onMessage: (message: RtmpMessage) => void;
  #limits: RtmpLimits;
  /** Added to limit errors (e.g. " before publish"). */
  #note: string;
  readonly #hdr = Buffer.alloc(MAX_CHUNK_HEADER);
  #hdrLen = 0;
  #current: ChunkState | undefined;
  #chunkLeft = 0;
  #messageBytes = 0;
  #chunkSize = DEFAULT_CHUNK_SIZE;
  readonly #streams = new Map<number, ChunkState>();
  #released = false;

  constructor(limits: RtmpLimits, onMessage: (message: RtmpMessage) => void, note = '') {
    this.#limits = limits;
    this.#onMessage = onMessage;
    this.#note = note;
  }

  /** Changes the limits from the next chunk on (e.g. once the peer is authenticated). */
  setLimits(limits: RtmpLimits, note = ''): void {
    this.#limits = limits;
    this.#note = note;
  }

  /** Bytes held for unfinished messages. */
  get bufferedBytes(): number {
    return this.#messageBytes;
  }

  /** The chunk size the peer set. */
  get chunkSize(): number {
    return this.#chunkSize;
  }

  /** Chunk streams the peer opened. */
  get chunkStreams(): number {
    return this.#streams.size;
  }

  /** Parses `data` from `off`; stops early once released (a message handler may release it). */
  push(data: Buffer, off = 0): void {
    while (off < data.length && !this.#released) {
      if (this.#chunkLeft > 0) {
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

  /** Drops every unfinished message and takes no more input. Idempotent. */
  release(): void {
    this.#released = true;
    this.#streams.clear();
    this.#current = undefined;
    this.#chunkLeft = 0;
    this.#messageBytes = 0;
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
    let st = this.#streams.get(csid);
    if (!st) {
      if (fmt !== 0) throw new Error(`chunk stream ${csid} starts without a full header`);
      if (this.#streams.size >= this.#limits.maxChunkStreams)
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
        `message of ${length} bytes is larger than ${this.#limits.maxMessageBytes}${this.#note}`,
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
    this.#streams.set(csid, st);
    this.#current = st;
    this.#chunkLeft = Math.min(this.#chunkSize, length - st.received);
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
      const held = this.#messageBytes + capacity - had;
      if (held > this.#limits.maxBufferedBytes)
        throw new RtmpLimitError(
          `unfinished messages would hold ${held} bytes (budget ${this.#limits.maxBufferedBytes}${this.#note})`,
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
    this.#releaseMessage(st);
    this.#dispatch({ type: st.type, streamId: st.streamId, timestamp: st.timestamp, payload });
  }

  #releaseMessage(st: ChunkState): void {
    this.#messageBytes -= st.buf?.length ?? 0;
    st.buf = undefined;
    st.received = 0;
  }

  /** Chunk-stream control is ours; everything else goes to the owner. */
  #dispatch(message: RtmpMessage): void {
    const { type, payload } = message;
    if (type === SET_CHUNK_SIZE) {
      if (payload.length < 4) throw new Error('short SetChunkSize');
      const size = payload.readUInt32BE(0) & 0x7fffffff;
      if (size < 1) throw new Error(`bad chunk size ${size}`);
      if (size > this.#limits.maxChunkSizeBytes)
        throw new RtmpLimitError(
          `chunk size ${size} is larger than ${this.#limits.maxChunkSizeBytes}${this.#note}`,
        );
      this.#chunkSize = size;
      return;
    }
    if (type === ABORT) {
      const st = payload.length >= 4 ? this.#streams.get(payload.readUInt32BE(0)) : undefined;
      if (st) this.#releaseMessage(st);
      return;
    }
    this.#onMessage(message);
  }
}

/**
 * One message as chunks of at most `chunkSize` bytes: a full header (timestamp 0), then type-3
 * continuation headers. Chunk stream ids 2–63 only (one-byte basic header).
 */
export function encodeChunks(
  csid: number,
  type: number,
  streamId: number,
  payload: Buffer,
  chunkSize: number,
): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(12);
  h[0] = csid & 0x3f;
  h.writeUIntBE(0, 1, 3);
  h.writeUIntBE(payload.length, 4, 3);
  h[7] = type;
  h.writeUInt32LE(streamId, 8);
  parts.push(h);
  for (let off = 0; off < payload.length; off += chunkSize) {
    if (off > 0) parts.push(Buffer.from([0xc0 | (csid & 0x3f)]));
    parts.push(payload.subarray(off, off + chunkSize));
  }
  return Buffer.concat(parts);
}
