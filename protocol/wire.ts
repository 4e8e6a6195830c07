/**
 * Binary codec of the peer wire protocol (types and limits in `wire-types.ts`).
 *
 * Every message starts with one type byte. Numbers are unsigned LEB128 varints of at most 53 bits
 * (8 bytes, minimal encoding only); strings are a u8 byte length then ASCII/UTF-8 bytes; `have`/`lost`
 * ranges are delta-encoded with unsigned deltas (first `from`; then per range the gap since the
 * previous `to` minus one, and `to - from`), so an unsorted, overlapping or empty range cannot even
 * be expressed; a `data` payload runs to the end of the message. The decoder accepts
 * exactly the canonical encoding of a valid message (so decode → encode gives back the same bytes)
 * and throws {@link WireError} `peer-protocol-violation` on anything else — or
 * `peer-version-mismatch` for a `hello` carrying another {@link WIRE_VERSION}, whose remainder it
 * does not try to read. Isomorphic: Uint8Array/DataView only.
 */
import { isChannelId, isRenditionName, isSequenceNumber } from './segment-id.ts';
import {
  MAX_CHUNK_BYTES,
  MAX_HAVE_RANGES,
  MAX_MESSAGE_BYTES,
  MAX_SEGMENT_BYTES,
  WIRE_VERSION,
  WireError,
  type AbsentReason,
  type WireMessage,
} from './wire-types.ts';
import type { ByeCode } from './errors.ts';

const PEER_ID_PATTERN = /^[A-Za-z0-9_-]{16}$/;

/** Type bytes. Never renumber: they are the wire format. */
const T_HELLO = 0x01;
const T_HAVE = 0x02;
const T_LOST = 0x03;
const T_REQUEST = 0x04;
const T_DATA = 0x05;
const T_CANCEL = 0x06;
const T_ABSENT = 0x07;
const T_BYE = 0x08;
const T_RECEIVING = 0x09;

/** Wire value = index. Explicit (not `ABSENT_REASONS`) so reordering that list cannot change the format. */
const ABSENT_CODES: readonly AbsentReason[] = ['not-held', 'busy', 'evicted'];
/** Wire value = index. */
const BYE_CODES: readonly ByeCode[] = [
  'bye',
  'peer-protocol-violation',
  'peer-version-mismatch',
  'peer-sent-bad-segment',
  'peer-timeout',
  'peer-wrong-channel',
  'peer-over-budget',
  'peer-unresponsive',
];

/** `have` flags byte: bit 0 = reset; the other bits must be zero. */
const FLAG_RESET = 0x01;

// ---------------------------------------------------------------------------------------------------
// Encoding

class Writer {
  #buf: Uint8Array;
  #len = 0;

  constructor(capacity: number) {
    this.#buf = new Uint8Array(capacity);
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  u8(value: number): void {
    this.#reserve(1);
    this.#buf[this.#len++] = value;
  }

  /** `value` must be a safe non-negative integer (checked by the caller). */
  varint(value: number): void {
    this.#reserve(8);
    let v = value;
    while (v >= 0x80) {
      this.#buf[this.#len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.#buf[this.#len++] = v;
  }

  /** `value` must be ASCII, at most 255 characters (checked by the caller through the patterns). */
  ascii(value: string): void {
    this.#reserve(1 + value.length);
    this.#buf[this.#len++] = value.length;
    for (let i = 0; i < value.length; i++) this.#buf[this.#len++] = value.charCodeAt(i);
  }

  /** Starts over (the buffer is kept). */
  reset(): this {
    this.#len = 0;
    return this;
  }

  bytes(value: Uint8Array): void {
    this.#reserve(value.length);
    this.#buf.set(value, this.#len);
    this.#len += value.length;
  }

  /** A copy of the message: the writer can start over. */
  copy(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }

  /** The message in the writer's buffer, good until the writer starts over. */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }
}

/**
 * The writer reused for every message (encoding is synchronous): a message then costs one allocation,
 * its exact copy, or none when sent at once ({@link encodeMessageTransient}).
 */
const scratch = new Writer(256);

function misuse(message: string): never {
  throw new TypeError(`encodeMessage: ${message}`);
}

function checkSeq(value: unknown, field: string): number {
  if (!isSequenceNumber(value)) misuse(`${field} must be a safe non-negative integer, got ${String(value)}`);
  return value;
}

function checkString(value: unknown, ok: (v: unknown) => boolean, field: string): string {
  if (!ok(value)) misuse(`invalid ${field}: ${JSON.stringify(value)}`);
  return value as string;
}

const isPeerId = (v: unknown): boolean => typeof v === 'string' && PEER_ID_PATTERN.test(v);

function writeRanges(w: Writer, ranges: unknown): void {
  if (!Array.isArray(ranges)) misuse('ranges must be an array');
  if (ranges.length > MAX_HAVE_RANGES)
    misuse(`${ranges.length} ranges > MAX_HAVE_RANGES (${MAX_HAVE_RANGES})`);
  w.varint(ranges.length);
  let prevTo = -1;
  for (let i = 0; i < ranges.length; i++) {
    const r: unknown = ranges[i];
    if (!Array.isArray(r) || r.length !== 2) misuse(`ranges[${i}] must be a [from, to] pair`);
    const from = checkSeq(r[0], `ranges[${i}][0]`);
    const to = checkSeq(r[1], `ranges[${i}][1]`);
    if (from > to) misuse(`ranges[${i}]: from ${from} > to ${to}`);
    if (i === 0) w.varint(from);
    else if (from <= prevTo) misuse(`ranges[${i}] overlaps or precedes ranges[${i - 1}]`);
    else w.varint(from - prevTo - 1);
    w.varint(to - from);
    prevTo = to;
  }
}

/**
 * Encodes one message. Throws a TypeError on invalid input (misuse); whatever it returns,
 * {@link decodeMessage} decodes back to an equal message. (The one exception by design: a `hello`
 * with a `version` other than {@link WIRE_VERSION} encodes, so that tests can play an old or future
 * peer, and decodes as `peer-version-mismatch`.)
 */
export function encodeMessage(msg: WireMessage): Uint8Array {
  writeMessage(scratch.reset(), msg);
  return scratch.copy();
}

/**
 * {@link encodeMessage} into a buffer the encoder keeps and reuses: the bytes returned are good until
 * the next call. For a sender that hands them at once to something that copies them (`PeerLink.send`
 * does, by contract): a message then costs no allocation of its own.
 */
export function encodeMessageTransient(msg: WireMessage): Uint8Array {
  writeMessage(scratch.reset(), msg);
  return scratch.view();
}

/** Writes one message (checked: misuse throws a TypeError). */
function writeMessage(w: Writer, msg: WireMessage): void {
  if (typeof msg !== 'object' || msg === null) misuse('message must be an object');
  switch (msg.type) {
    case 'hello': {
      w.u8(T_HELLO);
      w.varint(checkSeq(msg.version, 'version'));
      w.ascii(checkString(msg.peerId, isPeerId, 'peer id'));
      w.ascii(checkString(msg.channel, isChannelId, 'channel id'));
      return;
    }
    case 'have':
    case 'lost': {
      w.u8(msg.type === 'have' ? T_HAVE : T_LOST);
      w.ascii(checkString(msg.rendition, isRenditionName, 'rendition'));
      if (msg.type === 'have') {
        if (typeof msg.reset !== 'boolean') misuse('reset must be a boolean');
        w.u8(msg.reset ? FLAG_RESET : 0);
      }
      writeRanges(w, msg.ranges);
      return;
    }
    case 'receiving': {
      w.u8(T_RECEIVING);
      w.ascii(checkString(msg.rendition, isRenditionName, 'rendition'));
      w.varint(checkSeq(msg.mediaSequence, 'mediaSequence'));
      return;
    }
    case 'request': {
      w.u8(T_REQUEST);
      w.varint(checkSeq(msg.requestId, 'requestId'));
      w.ascii(checkString(msg.rendition, isRenditionName, 'rendition'));
      w.varint(checkSeq(msg.mediaSequence, 'mediaSequence'));
      w.varint(checkSeq(msg.deadlineMs, 'deadlineMs'));
      return;
    }
    case 'data': {
      const requestId = checkSeq(msg.requestId, 'requestId');
      const offset = checkSeq(msg.offset, 'offset');
      const totalBytes = checkSeq(msg.totalBytes, 'totalBytes');
      const bytes: unknown = msg.bytes;
      if (!(bytes instanceof Uint8Array)) misuse('data bytes must be a Uint8Array');
      if (bytes.length === 0) misuse('data bytes must not be empty');
      if (bytes.length > MAX_CHUNK_BYTES) misuse(`data chunk of ${bytes.length} bytes > ${MAX_CHUNK_BYTES}`);
      if (totalBytes > MAX_SEGMENT_BYTES) misuse(`totalBytes ${totalBytes} > ${MAX_SEGMENT_BYTES}`);
      if (offset + bytes.length > totalBytes)
        misuse(`offset ${offset} + ${bytes.length} bytes > totalBytes ${totalBytes}`);
      w.u8(T_DATA);
      w.varint(requestId);
      w.varint(offset);
      w.varint(totalBytes);
      w.bytes(bytes);
      return;
    }
    case 'cancel': {
      w.u8(T_CANCEL);
      w.varint(checkSeq(msg.requestId, 'requestId'));
      return;
    }
    case 'absent': {
      w.u8(T_ABSENT);
      w.varint(checkSeq(msg.requestId, 'requestId'));
      const code = ABSENT_CODES.indexOf(msg.reason);
      if (code < 0) misuse(`unknown absent reason: ${JSON.stringify(msg.reason)}`);
      w.u8(code);
      return;
    }
    case 'bye': {
      const code = (BYE_CODES as readonly string[]).indexOf(msg.code);
      if (code < 0) misuse(`unknown bye code: ${JSON.stringify(msg.code)}`);
      w.u8(T_BYE);
      w.u8(code);
      return;
    }
    default:
      return misuse(`unknown message type: ${JSON.stringify((msg as { type?: unknown }).type)}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Decoding

function violation(message: string): never {
  throw new WireError('peer-protocol-violation', message);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * ASCII strings decoded lately, with the check they passed: the same few (renditions, the channel)
 * come in nearly every message, so a match is returned as it is, neither built nor checked again.
 * Slot by length and first and last byte.
 */
const RECENT_SLOTS = 32;
const recentText: (string | undefined)[] = new Array<string | undefined>(RECENT_SLOTS).fill(undefined);
const recentCheck: (((v: string) => boolean) | undefined)[] = new Array<((v: string) => boolean) | undefined>(
  RECENT_SLOTS,
).fill(undefined);

function recentSlot(bytes: Uint8Array, start: number, len: number): number {
  return len === 0 ? 0 : (len * 7 + bytes[start]! * 3 + bytes[start + len - 1]!) % RECENT_SLOTS;
}

/** The recent string in `slot` when it is exactly these bytes and passed `ok`, else undefined. */
function recentMatch(
  slot: number,
  bytes: Uint8Array,
  start: number,
  len: number,
  ok: (v: string) => boolean,
): string | undefined {
  const text = recentText[slot];
  if (text === undefined || text.length !== len || recentCheck[slot] !== ok) return undefined;
  for (let i = 0; i < len; i++) if (text.charCodeAt(i) !== bytes[start + i]) return undefined;
  return text;
}

class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  u8(field: string): number {
    const b = this.bytes[this.pos];
    if (b === undefined) violation(`truncated: ${field}`);
    this.pos++;
    return b;
  }

  /** Unsigned LEB128, minimal, ≤ 2^53 − 1 (8 bytes at most, the 8th holding 4 bits). */
  varint(field: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      const b = this.bytes[this.pos];
      if (b === undefined) violation(`truncated: ${field}`);
      this.pos++;
      if (i === 7 && b > 0x0f) violation(`${field}: varint exceeds 53 bits`);
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (b === 0 && i > 0) violation(`${field}: non-minimal varint`);
        return value;
      }
      scale *= 0x80;
    }
  }

  string(field: string, ok: (v: string) => boolean): string {
    const len = this.u8(`${field} length`);
    const end = this.pos + len;
    if (end > this.bytes.length) violation(`truncated: ${field}`);
    const slot = recentSlot(this.bytes, this.pos, len);
    const seen = recentMatch(slot, this.bytes, this.pos, len, ok);
    if (seen !== undefined) {
      this.pos = end;
      return seen;
    }
    const raw = this.bytes.subarray(this.pos, end);
    this.pos = end;
    let text = '';
    let ascii = true;
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i]!;
      if (c >= 0x80) {
        ascii = false;
        break;
      }
      text += String.fromCharCode(c);
    }
    if (!ascii) {
      try {
        text = strictUtf8.decode(raw);
      } catch {
        violation(`${field}: not valid UTF-8`);
      }
    }
    if (!ok(text)) violation(`${field}: invalid value ${JSON.stringify(text)}`);
    if (ascii) {
      recentText[slot] = text;
      recentCheck[slot] = ok;
    }
    return text;
  }

  end(type: string): void {
    if (this.pos !== this.bytes.length)
      violation(`${type}: ${this.bytes.length - this.pos} trailing byte(s)`);
  }
}

function readRanges(r: Reader): [number, number][] {
  const count = r.varint('range count');
  if (count > MAX_HAVE_RANGES) violation(`${count} ranges > MAX_HAVE_RANGES (${MAX_HAVE_RANGES})`);
  // Each range takes at least 2 bytes: refuse before allocating for a count the input cannot hold.
  if (count * 2 > r.bytes.length - r.pos) violation('truncated: ranges');
  const ranges: [number, number][] = [];
  let prevTo = -1;
  for (let i = 0; i < count; i++) {
    // Unsigned deltas: ranges are sorted, disjoint and non-empty by construction; only overflow
    // past 2^53 − 1 is left to check.
    let from: number;
    if (i === 0) from = r.varint('range from');
    else {
      const gap = r.varint('range gap');
      if (gap > Number.MAX_SAFE_INTEGER - prevTo - 1) violation(`range ${i}: sequence number overflow`);
      from = prevTo + 1 + gap;
    }
    const span = r.varint('range span');
    if (span > Number.MAX_SAFE_INTEGER - from) violation(`range ${i}: sequence number overflow`);
    const to = from + span;
    ranges.push([from, to]);
    prevTo = to;
  }
  return ranges;
}

/**
 * Decodes one message. Throws {@link WireError}: `peer-protocol-violation` for anything malformed
 * or out of range, `peer-version-mismatch` for a `hello` of another wire version. A `data` message's
 * `bytes` is a view into `bytes` (no copy).
 */
export function decodeMessage(bytes: Uint8Array): WireMessage {
  if (!(bytes instanceof Uint8Array)) violation('not a byte array');
  if (bytes.length === 0) violation('empty message');
  if (bytes.length > MAX_MESSAGE_BYTES)
    violation(`message of ${bytes.length} bytes > MAX_MESSAGE_BYTES (${MAX_MESSAGE_BYTES})`);
  const r = new Reader(bytes);
  const type = r.u8('type');
  switch (type) {
    case T_HELLO: {
      const version = r.varint('version');
      if (version !== WIRE_VERSION)
        throw new WireError(
          'peer-version-mismatch',
          `peer speaks wire version ${version}, this peer speaks ${WIRE_VERSION}`,
        );
      const peerId = r.string('peer id', isPeerId);
      const channel = r.string('channel id', isChannelId);
      r.end('hello');
      return { type: 'hello', version, peerId, channel };
    }
    case T_HAVE: {
      const rendition = r.string('rendition', isRenditionName);
      const flags = r.u8('have flags');
      if ((flags & ~FLAG_RESET) !== 0) violation(`have: unknown flags 0x${flags.toString(16)}`);
      const ranges = readRanges(r);
      r.end('have');
      return { type: 'have', rendition, reset: flags === FLAG_RESET, ranges };
    }
    case T_LOST: {
      const rendition = r.string('rendition', isRenditionName);
      const ranges = readRanges(r);
      r.end('lost');
      return { type: 'lost', rendition, ranges };
    }
    case T_RECEIVING: {
      const rendition = r.string('rendition', isRenditionName);
      const mediaSequence = r.varint('mediaSequence');
      r.end('receiving');
      return { type: 'receiving', rendition, mediaSequence };
    }
    case T_REQUEST: {
      const requestId = r.varint('requestId');
      const rendition = r.string('rendition', isRenditionName);
      const mediaSequence = r.varint('mediaSequence');
      const deadlineMs = r.varint('deadlineMs');
      r.end('request');
      return { type: 'request', requestId, rendition, mediaSequence, deadlineMs };
    }
    case T_DATA: {
      const requestId = r.varint('requestId');
      const offset = r.varint('offset');
      const totalBytes = r.varint('totalBytes');
      const payload = bytes.subarray(r.pos);
      if (payload.length === 0) violation('data: empty payload');
      if (payload.length > MAX_CHUNK_BYTES)
        violation(`data: chunk of ${payload.length} bytes > MAX_CHUNK_BYTES (${MAX_CHUNK_BYTES})`);
      if (totalBytes > MAX_SEGMENT_BYTES)
        violation(`data: totalBytes ${totalBytes} > MAX_SEGMENT_BYTES (${MAX_SEGMENT_BYTES})`);
      if (offset > totalBytes - payload.length)
        violation(`data: offset ${offset} + ${payload.length} bytes > totalBytes ${totalBytes}`);
      return { type: 'data', requestId, offset, totalBytes, bytes: payload };
    }
    case T_CANCEL: {
      const requestId = r.varint('requestId');
      r.end('cancel');
      return { type: 'cancel', requestId };
    }
    case T_ABSENT: {
      const requestId = r.varint('requestId');
      const code = r.u8('absent reason');
      const reason = ABSENT_CODES[code];
      if (reason === undefined) violation(`absent: unknown reason ${code}`);
      r.end('absent');
      return { type: 'absent', requestId, reason };
    }
    case T_BYE: {
      const code = r.u8('bye code');
      const name = BYE_CODES[code];
      if (name === undefined) violation(`bye: unknown code ${code}`);
      r.end('bye');
      return { type: 'bye', code: name };
    }
    default:
      return violation(`unknown message type 0x${type.toString(16).padStart(2, '0')}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// HaveSet

function checkArg(value: number, what: string): void {
  if (!isSequenceNumber(value))
    throw new TypeError(`HaveSet: ${what} must be a safe non-negative integer, got ${String(value)}`);
}

/**
 * A set of media sequence numbers (one rendition), kept as sorted, disjoint, non-adjacent inclusive
 * ranges. `has` is a binary search; adding at or past the end (the live case) is O(1).
 */
export class HaveSet {
  /** Range starts and ends, parallel, sorted; `#to[i] + 1 < #from[i + 1]`. */
  readonly #from: number[] = [];
  readonly #to: number[] = [];
  #size = 0;

  /** Builds a set from any ranges (unsorted, overlapping or adjacent ones are merged). */
  static fromRanges(ranges: Iterable<readonly [number, number]>): HaveSet {
    const set = new HaveSet();
    for (const [from, to] of ranges) set.addRange(from, to);
    return set;
  }

  /** Number of sequence numbers in the set. */
  get size(): number {
    return this.#size;
  }

  /** Number of (merged) ranges. */
  get rangeCount(): number {
    return this.#from.length;
  }

  min(): number | undefined {
    return this.#from[0];
  }

  max(): number | undefined {
    return this.#to[this.#to.length - 1];
  }

  has(seq: number): boolean {
    // Last range starting at or before seq.
    const i = this.#lastFromAtMost(seq);
    return i >= 0 && seq <= this.#to[i]!;
  }

  add(seq: number): this {
    return this.addRange(seq, seq);
  }

  /** Adds `[from, to]` (inclusive). */
  addRange(from: number, to: number): this {
    checkArg(from, 'from');
    checkArg(to, 'to');
    if (from > to) throw new TypeError(`HaveSet: from ${from} > to ${to}`);
    const n = this.#from.length;
    const lastTo = n > 0 ? this.#to[n - 1]! : -2;
    if (from > lastTo + 1) {
      // Past the end, not adjacent: append.
      this.#from.push(from);
      this.#to.push(to);
      this.#size += to - from + 1;
      return this;
    }
    if (from >= this.#from[n - 1]!) {
      // Touches the last range only: extend it.
      if (to > lastTo) {
        this.#to[n - 1] = to;
        this.#size += to - lastTo;
      }
      return this;
    }
    // General case: merge with every range that overlaps or touches [from, to].
    const i = this.#firstToAtLeast(from - 1);
    const j = this.#lastFromAtMost(to + 1);
    if (i > j) {
      this.#from.splice(i, 0, from);
      this.#to.splice(i, 0, to);
      this.#size += to - from + 1;
      return this;
    }
    const mergedFrom = Math.min(from, this.#from[i]!);
    const mergedTo = Math.max(to, this.#to[j]!);
    for (let k = i; k <= j; k++) this.#size -= this.#to[k]! - this.#from[k]! + 1;
    this.#size += mergedTo - mergedFrom + 1;
    this.#from.splice(i, j - i + 1, mergedFrom);
    this.#to.splice(i, j - i + 1, mergedTo);
    return this;
  }

  /** Removes `[from, to]` (inclusive), splitting a range if needed. */
  remove(from: number, to: number): this {
    checkArg(from, 'from');
    checkArg(to, 'to');
    if (from > to) throw new TypeError(`HaveSet: from ${from} > to ${to}`);
    const i = this.#firstToAtLeast(from);
    const j = this.#lastFromAtMost(to);
    if (i > j) return this;
    const newFrom: number[] = [];
    const newTo: number[] = [];
    if (this.#from[i]! < from) {
      newFrom.push(this.#from[i]!);
      newTo.push(from - 1);
    }
    if (this.#to[j]! > to) {
      newFrom.push(to + 1);
      newTo.push(this.#to[j]!);
    }
    for (let k = i; k <= j; k++) this.#size -= this.#to[k]! - this.#from[k]! + 1;
    for (let k = 0; k < newFrom.length; k++) this.#size += newTo[k]! - newFrom[k]! + 1;
    this.#from.splice(i, j - i + 1, ...newFrom);
    this.#to.splice(i, j - i + 1, ...newTo);
    return this;
  }

  clear(): this {
    this.#from.length = 0;
    this.#to.length = 0;
    this.#size = 0;
    return this;
  }

  /** The merged ranges, sorted (a fresh array: ready for a `have`/`lost` message). */
  ranges(): [number, number][] {
    const out: [number, number][] = new Array(this.#from.length);
    for (let k = 0; k < this.#from.length; k++) out[k] = [this.#from[k]!, this.#to[k]!];
    return out;
  }

  /** Index of the first range with `to >= value`, or the range count. */
  #firstToAtLeast(value: number): number {
    let lo = 0;
    let hi = this.#to.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#to[mid]! >= value) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Index of the last range with `from <= value`, or -1. */
  #lastFromAtMost(value: number): number {
    let lo = 0;
    let hi = this.#from.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#from[mid]! <= value) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }
}
