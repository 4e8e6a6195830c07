/**
 * A strict STUN (RFC 8489) message codec.
 *
 * `parseStunMessage` validates everything at the edge and never throws, whatever the bytes:
 * it answers `{ ok: false, reason }` with a stable reason code instead. `encodeStunMessage` is for
 * our own messages: misuse (a bad address, an oversized text, integrity attributes given by hand)
 * throws at once.
 *
 * Credentials: the short-term key is the password's UTF-8 bytes; the long-term key is
 * MD5(username ":" realm ":" password). Neither applies SASLprep / OpaqueString: callers pass
 * strings already prepared (as RFC 5769's vectors do).
 */
import crypto from 'node:crypto';
import net from 'node:net';

export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_HEADER_BYTES = 20;
/** XORed into the CRC-32 of the message to form FINGERPRINT. */
export const STUN_FINGERPRINT_XOR = 0x5354554e;

export const STUN_METHOD = { binding: 0x001 } as const;

export type StunClass = 'request' | 'indication' | 'success' | 'error';
/** The two class bits (C1 C0) of each class. */
export const STUN_CLASS: Readonly<Record<StunClass, number>> = {
  request: 0b00,
  indication: 0b01,
  success: 0b10,
  error: 0b11,
};
const CLASS_BY_BITS: readonly StunClass[] = ['request', 'indication', 'success', 'error'];

export const STUN_ATTR = {
  MAPPED_ADDRESS: 0x0001,
  CHANGE_REQUEST: 0x0003,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  REALM: 0x0014,
  NONCE: 0x0015,
  MESSAGE_INTEGRITY_SHA256: 0x001c,
  XOR_MAPPED_ADDRESS: 0x0020,
  PRIORITY: 0x0024,
  USE_CANDIDATE: 0x0025,
  /** RFC 5780 §7.6: free-form bytes that pad a message (IP fragmentation tests). */
  PADDING: 0x0026,
  /** RFC 5780 §7.5: the port (then 2 bytes of padding) the response goes to, at the source address. */
  RESPONSE_PORT: 0x0027,
  SOFTWARE: 0x8022,
  ALTERNATE_SERVER: 0x8023,
  FINGERPRINT: 0x8028,
  ICE_CONTROLLED: 0x8029,
  ICE_CONTROLLING: 0x802a,
  RESPONSE_ORIGIN: 0x802b,
  OTHER_ADDRESS: 0x802c,
} as const;

/** Attribute types this codec understands (anything else below 0x8000 is unknown comprehension-required). */
const KNOWN_ATTRS: ReadonlySet<number> = new Set(Object.values(STUN_ATTR));
const ADDRESS_ATTRS: ReadonlySet<number> = new Set([
  STUN_ATTR.MAPPED_ADDRESS,
  STUN_ATTR.XOR_MAPPED_ADDRESS,
  STUN_ATTR.ALTERNATE_SERVER,
  STUN_ATTR.RESPONSE_ORIGIN,
  STUN_ATTR.OTHER_ADDRESS,
]);
const XOR_ADDRESS_ATTRS: ReadonlySet<number> = new Set([STUN_ATTR.XOR_MAPPED_ADDRESS]);
/** Text attributes and their maximum UTF-8 length in bytes (RFC 8489 §14). */
const TEXT_ATTRS: ReadonlyMap<number, number> = new Map([
  [STUN_ATTR.USERNAME, 512],
  [STUN_ATTR.REALM, 763],
  [STUN_ATTR.NONCE, 763],
  [STUN_ATTR.SOFTWARE, 763],
]);
const MAX_REASON_BYTES = 763;
/** Fixed value lengths of attributes kept raw. */
const RAW_LENGTHS: ReadonlyMap<number, number> = new Map([
  [STUN_ATTR.PRIORITY, 4],
  [STUN_ATTR.USE_CANDIDATE, 0],
  [STUN_ATTR.RESPONSE_PORT, 4],
  [STUN_ATTR.ICE_CONTROLLED, 8],
  [STUN_ATTR.ICE_CONTROLLING, 8],
]);

export const STUN_ERROR_REASON: Readonly<Record<number, string>> = {
  300: 'Try Alternate',
  400: 'Bad Request',
  401: 'Unauthenticated',
  420: 'Unknown Attribute',
  438: 'Stale Nonce',
  500: 'Server Error',
};

export interface StunAddress {
  family: 'IPv4' | 'IPv6';
  /** Dotted quad, or RFC 5952 text for IPv6. */
  address: string;
  port: number;
}

export type StunAttribute =
  | { kind: 'address'; type: number; address: StunAddress }
  | { kind: 'text'; type: number; text: string }
  | { kind: 'error-code'; type: number; code: number; reason: string }
  | { kind: 'unknown-attributes'; type: number; types: number[] }
  | { kind: 'change-request'; type: number; changeIp: boolean; changePort: boolean }
  | { kind: 'raw'; type: number; value: Uint8Array };

export interface StunMessageInit {
  class: StunClass;
  method: number;
  /** 12 bytes. */
  transactionId: Uint8Array;
  /** In wire order; never MESSAGE-INTEGRITY(-SHA256) or FINGERPRINT (see the encoder's options). */
  attributes: StunAttribute[];
}

export interface StunIntegrity {
  hmac: Uint8Array;
  /** Offset of the attribute's header in `raw`. */
  offset: number;
}

export interface StunMessage extends StunMessageInit {
  /** The datagram as received. */
  raw: Uint8Array;
  messageIntegrity?: StunIntegrity;
  messageIntegritySha256?: StunIntegrity;
  /** The FINGERPRINT value, present only when it was there and correct. */
  fingerprint?: number;
  /** Comprehension-required types this codec does not understand (answer 420 to a request). */
  unknownRequired: number[];
  /** Types of attributes after MESSAGE-INTEGRITY(-SHA256) that were ignored (RFC 8489 §14.5, §14.6). */
  ignored: number[];
}

export type StunParseFailure =
  | 'too-short'
  | 'not-stun'
  | 'bad-magic-cookie'
  | 'bad-length'
  | 'truncated-attribute'
  | 'bad-attribute'
  | 'bad-integrity-length'
  | 'fingerprint-not-last'
  | 'bad-fingerprint';

export type StunParseResult =
  { ok: true; message: StunMessage } | { ok: false; reason: StunParseFailure; detail: string };

// ---------------------------------------------------------------- helpers

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

/** RFC 5952 text of 16 address bytes (no embedded IPv4 form). */
function formatIpv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Bytes of an IPv4 or IPv6 address (dotted IPv4 tails allowed), undefined when not one. */
export function ipToBytes(address: string): Uint8Array | undefined {
  if (net.isIPv4(address)) return Uint8Array.from(address.split('.').map(Number));
  if (!net.isIPv6(address) || address.includes('%')) return undefined;
  let text = address;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text =
      text.slice(0, -v4[1]!.length) +
      `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const parse = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  const r = parse(rest);
  const groups = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  if (groups.length !== 8) return undefined;
  for (const g of groups) tail.push(g >> 8, g & 0xff);
  return Uint8Array.from(tail);
}

/** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as dual-stack sockets report) as plain IPv4. */
export function unmapIpv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

export function shortTermKey(password: string): Uint8Array {
  return utf8Encoder.encode(password);
}

/** RFC 8489 §9.2.2 long-term key for MESSAGE-INTEGRITY: MD5(username ":" realm ":" password). */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  return new Uint8Array(crypto.createHash('md5').update(`${username}:${realm}:${password}`, 'utf8').digest());
}

function hmac(algorithm: 'sha1' | 'sha256', key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(crypto.createHmac(algorithm, key).update(data).digest());
}

/** The message bytes an integrity attribute at `offset` covers, with the length field patched. */
function integrityInput(raw: Uint8Array, offset: number, valueBytes: number): Uint8Array {
  const copy = new Uint8Array(raw.subarray(0, offset));
  view(copy).setUint16(2, offset + 4 + valueBytes - STUN_HEADER_BYTES);
  return copy;
}

/**
 * Checks MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY, against `key`
 * (see {@link shortTermKey}, {@link longTermKey}). False when the message carries neither.
 */
export function verifyIntegrity(
  message: StunMessage,
  key: Uint8Array,
  algorithm?: 'sha1' | 'sha256',
): boolean {
  const alg = algorithm ?? (message.messageIntegritySha256 ? 'sha256' : 'sha1');
  const mi = alg === 'sha256' ? message.messageIntegritySha256 : message.messageIntegrity;
  if (!mi) return false;
  const expected = hmac(alg, key, integrityInput(message.raw, mi.offset, mi.hmac.length));
  return bytesEqual(expected.subarray(0, mi.hmac.length), mi.hmac);
}

// ---------------------------------------------------------------- parsing

type AttrResult = { ok: true; attr: StunAttribute } | { ok: false; detail: string };

function decodeAddress(type: number, v: Uint8Array, txid: Uint8Array): AttrResult {
  const family = v[1];
  const expected = family === 0x01 ? 8 : family === 0x02 ? 20 : -1;
  if (v.length < 4 || v.length !== expected)
    return { ok: false, detail: `address family/length ${family}/${v.length}` };
  const xor = XOR_ADDRESS_ATTRS.has(type);
  const dv = view(v);
  const port = xor ? dv.getUint16(2) ^ (STUN_MAGIC_COOKIE >>> 16) : dv.getUint16(2);
  const a = v.slice(4);
  if (xor) {
    const mask = new Uint8Array(16);
    view(mask).setUint32(0, STUN_MAGIC_COOKIE);
    mask.set(txid, 4);
    for (let i = 0; i < a.length; i++) a[i]! ^= mask[i]!;
  }
  return {
    ok: true,
    attr: {
      kind: 'address',
      type,
      address:
        family === 0x01
          ? { family: 'IPv4', address: a.join('.'), port }
          : { family: 'IPv6', address: formatIpv6(a), port },
    },
  };
}

function decodeAttribute(type: number, v: Uint8Array, txid: Uint8Array): AttrResult {
  if (ADDRESS_ATTRS.has(type)) return decodeAddress(type, v, txid);
  const maxText = TEXT_ATTRS.get(type);
  if (maxText !== undefined) {
    const text = v.length <= maxText ? decodeUtf8(v) : undefined;
    return text === undefined
      ? { ok: false, detail: 'text too long or not UTF-8' }
      : { ok: true, attr: { kind: 'text', type, text } };
  }
  const dv = view(v);
  switch (type) {
    case STUN_ATTR.ERROR_CODE: {
      if (v.length < 4 || v.length > 4 + MAX_REASON_BYTES) return { ok: false, detail: 'ERROR-CODE length' };
      const cls = v[2]! & 0x07;
      const num = v[3]!;
      const reason = decodeUtf8(v.subarray(4));
      if (cls < 3 || cls > 6 || num > 99 || reason === undefined)
        return { ok: false, detail: 'ERROR-CODE value' };
      return { ok: true, attr: { kind: 'error-code', type, code: cls * 100 + num, reason } };
    }
    case STUN_ATTR.UNKNOWN_ATTRIBUTES: {
      if (v.length % 2 !== 0) return { ok: false, detail: 'UNKNOWN-ATTRIBUTES length' };
      const types: number[] = [];
      for (let i = 0; i < v.length; i += 2) types.push(dv.getUint16(i));
      return { ok: true, attr: { kind: 'unknown-attributes', type, types } };
    }
    case STUN_ATTR.CHANGE_REQUEST: {
      if (v.length !== 4) return { ok: false, detail: 'CHANGE-REQUEST length' };
      const flags = dv.getUint32(0);
      return {
        ok: true,
        attr: { kind: 'change-request', type, changeIp: (flags & 4) !== 0, changePort: (flags & 2) !== 0 },
      };
    }
  }
  const fixed = RAW_LENGTHS.get(type);
  if (fixed !== undefined && v.length !== fixed)
    return { ok: false, detail: `length ${v.length}, expected ${fixed}` };
  return { ok: true, attr: { kind: 'raw', type, value: v.slice() } };
}

function fail(reason: StunParseFailure, detail: string): StunParseResult {
  return { ok: false, reason, detail };
}

/** Parses one STUN message (a whole datagram, or one TCP frame). Never throws. */
export function parseStunMessage(buf: Uint8Array): StunParseResult {
  try {
    return parseUnsafe(buf);
  } catch (err) {
    // Defence in depth: a bug here must not become a crash on hostile input.
    return fail('not-stun', `internal: ${(err as Error)?.message}`);
  }
}

function parseUnsafe(input: Uint8Array): StunParseResult {
  if (!(input instanceof Uint8Array)) return fail('not-stun', 'not bytes');
  if (input.length < STUN_HEADER_BYTES) return fail('too-short', `${input.length} bytes`);
  const raw = new Uint8Array(input); // a copy, and a plain Uint8Array even for a Buffer (whose slice() is a view)
  const dv = view(raw);
  const type = dv.getUint16(0);
  if (type & 0xc000) return fail('not-stun', 'first two bits not zero');
  const length = dv.getUint16(2);
  if (dv.getUint32(4) !== STUN_MAGIC_COOKIE) return fail('bad-magic-cookie', dv.getUint32(4).toString(16));
  if (length % 4 !== 0) return fail('bad-length', `length ${length} not a multiple of 4`);
  if (length !== raw.length - STUN_HEADER_BYTES)
    return fail('bad-length', `length ${length}, datagram carries ${raw.length - STUN_HEADER_BYTES}`);
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  const cls = CLASS_BY_BITS[((type >> 7) & 0b10) | ((type >> 4) & 0b01)]!;
  const transactionId = raw.slice(8, 20);

  const message: StunMessage = {
    class: cls,
    method,
    transactionId,
    attributes: [],
    raw,
    unknownRequired: [],
    ignored: [],
  };
  let integrityDone = false; // MI or MI-SHA256 seen: only FINGERPRINT (and MI-SHA256 after MI) still count
  for (let off = STUN_HEADER_BYTES; off < raw.length;) {
    if (off + 4 > raw.length) return fail('truncated-attribute', `header at ${off}`);
    const at = dv.getUint16(off);
    const len = dv.getUint16(off + 2);
    const end = off + 4 + len;
    const next = off + 4 + Math.ceil(len / 4) * 4;
    if (next > raw.length) return fail('truncated-attribute', `0x${at.toString(16)} at ${off}, ${len} bytes`);
    const value = raw.subarray(off + 4, end);
    if (at === STUN_ATTR.FINGERPRINT) {
      if (next !== raw.length) return fail('fingerprint-not-last', `at ${off}`);
      if (len !== 4) return fail('bad-attribute', 'FINGERPRINT length');
      const got = view(value).getUint32(0);
      const want = (crc32(raw.subarray(0, off)) ^ STUN_FINGERPRINT_XOR) >>> 0;
      if (got !== want) return fail('bad-fingerprint', `${got.toString(16)} != ${want.toString(16)}`);
      message.fingerprint = got;
    } else if (
      at === STUN_ATTR.MESSAGE_INTEGRITY_SHA256 &&
      !message.messageIntegritySha256 &&
      (!integrityDone || message.messageIntegrity)
    ) {
      if (len < 16 || len > 32 || len % 4 !== 0)
        return fail('bad-integrity-length', `MESSAGE-INTEGRITY-SHA256 ${len}`);
      message.messageIntegritySha256 = { hmac: value.slice(), offset: off };
      integrityDone = true;
    } else if (integrityDone) {
      message.ignored.push(at);
    } else if (at === STUN_ATTR.MESSAGE_INTEGRITY) {
      if (len !== 20) return fail('bad-integrity-length', `MESSAGE-INTEGRITY ${len}`);
      message.messageIntegrity = { hmac: value.slice(), offset: off };
      integrityDone = true;
    } else if (at < 0x8000 && !KNOWN_ATTRS.has(at)) {
      message.unknownRequired.push(at);
      message.attributes.push({ kind: 'raw', type: at, value: value.slice() });
    } else {
      const r = decodeAttribute(at, value, transactionId);
      if (!r.ok) return fail('bad-attribute', `0x${at.toString(16).padStart(4, '0')}: ${r.detail}`);
      message.attributes.push(r.attr);
    }
    off = next;
  }
  return { ok: true, message };
}

// ---------------------------------------------------------------- encoding

export interface StunEncodeOptions {
  /** Appends MESSAGE-INTEGRITY (or -SHA256) computed with this key. */
  integrityKey?: Uint8Array;
  integrity?: 'sha1' | 'sha256';
  /** Appends FINGERPRINT (last). */
  fingerprint?: boolean;
  /** The byte used to pad attribute values to 4 bytes (0 by default; receivers ignore it). */
  paddingByte?: number;
}

function encodeAddress(a: StunAddress, xor: boolean, txid: Uint8Array): Uint8Array {
  const ip = ipToBytes(a.address);
  const want = a.family === 'IPv4' ? 4 : 16;
  if (!ip || ip.length !== want) throw new TypeError(`not an ${a.family} address: "${a.address}"`);
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 0xffff) throw new RangeError(`bad port ${a.port}`);
  const out = new Uint8Array(4 + want);
  const dv = view(out);
  out[1] = a.family === 'IPv4' ? 0x01 : 0x02;
  dv.setUint16(2, xor ? a.port ^ (STUN_MAGIC_COOKIE >>> 16) : a.port);
  out.set(ip, 4);
  if (xor) {
    const mask = new Uint8Array(16);
    view(mask).setUint32(0, STUN_MAGIC_COOKIE);
    mask.set(txid, 4);
    for (let i = 0; i < want; i++) out[4 + i]! ^= mask[i]!;
  }
  return out;
}

function encodeValue(a: StunAttribute, txid: Uint8Array): Uint8Array {
  switch (a.kind) {
    case 'address':
      if (!ADDRESS_ATTRS.has(a.type))
        throw new TypeError(`0x${a.type.toString(16)} is not an address attribute`);
      return encodeAddress(a.address, XOR_ADDRESS_ATTRS.has(a.type), txid);
    case 'text': {
      const max = TEXT_ATTRS.get(a.type);
      if (max === undefined) throw new TypeError(`0x${a.type.toString(16)} is not a text attribute`);
      const b = utf8Encoder.encode(a.text);
      if (b.length > max) throw new RangeError(`text attribute 0x${a.type.toString(16)} over ${max} bytes`);
      return b;
    }
    case 'error-code': {
      if (a.type !== STUN_ATTR.ERROR_CODE) throw new TypeError('error-code attributes are ERROR-CODE');
      if (!Number.isInteger(a.code) || a.code < 300 || a.code > 699)
        throw new RangeError(`bad error code ${a.code}`);
      const reason = utf8Encoder.encode(a.reason);
      if (reason.length > MAX_REASON_BYTES) throw new RangeError('error reason too long');
      const out = new Uint8Array(4 + reason.length);
      out[2] = Math.floor(a.code / 100);
      out[3] = a.code % 100;
      out.set(reason, 4);
      return out;
    }
    case 'unknown-attributes': {
      if (a.type !== STUN_ATTR.UNKNOWN_ATTRIBUTES)
        throw new TypeError('unknown-attributes are UNKNOWN-ATTRIBUTES');
      const out = new Uint8Array(a.types.length * 2);
      a.types.forEach((t, i) => view(out).setUint16(i * 2, t));
      return out;
    }
    case 'change-request': {
      if (a.type !== STUN_ATTR.CHANGE_REQUEST) throw new TypeError('change-request is CHANGE-REQUEST');
      const out = new Uint8Array(4);
      out[3] = (a.changeIp ? 4 : 0) | (a.changePort ? 2 : 0);
      return out;
    }
    case 'raw':
      if (
        a.type === STUN_ATTR.MESSAGE_INTEGRITY ||
        a.type === STUN_ATTR.MESSAGE_INTEGRITY_SHA256 ||
        a.type === STUN_ATTR.FINGERPRINT
      )
        throw new TypeError('MESSAGE-INTEGRITY and FINGERPRINT are added through the encoder options');
      return a.value;
  }
}

/** Encodes a message; appends MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT as the options ask. */
export function encodeStunMessage(msg: StunMessageInit, options: StunEncodeOptions = {}): Uint8Array {
  const { transactionId: txid } = msg;
  if (!(txid instanceof Uint8Array) || txid.length !== 12)
    throw new TypeError('transactionId must be 12 bytes');
  if (!Number.isInteger(msg.method) || msg.method < 0 || msg.method > 0xfff)
    throw new RangeError('bad method');
  const clsBits = STUN_CLASS[msg.class];
  if (clsBits === undefined) throw new TypeError(`bad class ${String(msg.class)}`);
  const pad = options.paddingByte ?? 0;
  const alg = options.integrity ?? 'sha1';
  const parts = msg.attributes.map((a) => {
    if (!Number.isInteger(a.type) || a.type < 0 || a.type > 0xffff)
      throw new RangeError(`bad attribute type ${a.type}`);
    const v = encodeValue(a, txid);
    if (v.length > 0xffff) throw new RangeError('attribute too long');
    return { type: a.type, value: v };
  });
  const body = parts.reduce((n, p) => n + 4 + Math.ceil(p.value.length / 4) * 4, 0);
  const miBytes = options.integrityKey ? (alg === 'sha256' ? 32 : 20) : 0;
  const total = STUN_HEADER_BYTES + body + (miBytes ? 4 + miBytes : 0) + (options.fingerprint ? 8 : 0);
  if (total - STUN_HEADER_BYTES > 0xffff) throw new RangeError('message too long');
  const out = new Uint8Array(total);
  const dv = view(out);
  const m = msg.method;
  dv.setUint16(
    0,
    (m & 0x000f) | ((m & 0x0070) << 1) | ((m & 0x0f80) << 2) | ((clsBits & 2) << 7) | ((clsBits & 1) << 4),
  );
  dv.setUint16(2, total - STUN_HEADER_BYTES);
  dv.setUint32(4, STUN_MAGIC_COOKIE);
  out.set(txid, 8);
  let off = STUN_HEADER_BYTES;
  for (const p of parts) {
    dv.setUint16(off, p.type);
    dv.setUint16(off + 2, p.value.length);
    out.set(p.value, off + 4);
    const next = off + 4 + Math.ceil(p.value.length / 4) * 4;
    out.fill(pad, off + 4 + p.value.length, next);
    off = next;
  }
  if (options.integrityKey) {
    dv.setUint16(off, alg === 'sha256' ? STUN_ATTR.MESSAGE_INTEGRITY_SHA256 : STUN_ATTR.MESSAGE_INTEGRITY);
    dv.setUint16(off + 2, miBytes);
    out.set(hmac(alg, options.integrityKey, integrityInput(out, off, miBytes)), off + 4);
    off += 4 + miBytes;
  }
  if (options.fingerprint) {
    dv.setUint16(off, STUN_ATTR.FINGERPRINT);
    dv.setUint16(off + 2, 4);
    dv.setUint32(off + 4, (crc32(out.subarray(0, off)) ^ STUN_FINGERPRINT_XOR) >>> 0);
  }
  return out;
}

/** The first attribute of a type, if any. */
export function findAttribute<K extends StunAttribute['kind']>(
  message: StunMessageInit,
  type: number,
  kind: K,
): Extract<StunAttribute, { kind: K }> | undefined {
  const a = message.attributes.find((x) => x.type === type);
  return a?.kind === kind ? (a as Extract<StunAttribute, { kind: K }>) : undefined;
}

export function randomTransactionId(): Uint8Array {
  return new Uint8Array(crypto.randomBytes(12));
}
