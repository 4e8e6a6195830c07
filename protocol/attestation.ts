/**
 * Segment attestations: for each published segment the source signs (Ed25519) a small record.
 * Peers verify it before playing or re-uploading any byte, whichever way the bytes came.
 *
 * Isomorphic: uses only WebCrypto (`globalThis.crypto.subtle`), present in Node ≥ 20 and browsers.
 */
import { fromBase64Url, toHex, utf8 } from './encoding.ts';
import type { AttestationErrorCode } from './errors.ts';
import { isChannelId, isRenditionName, isSequenceNumber, type SegmentId } from './segment-id.ts';

export const ATTESTATION_VERSION = 1;
/** `prevHash` of the first record of a rendition's chain. */
export const GENESIS_HASH = '0'.repeat(64);
const PAYLOAD_MAGIC = 'peertv-attestation';

/** Everything that is signed. */
export interface AttestationBody extends SegmentId {
  readonly v: typeof ATTESTATION_VERSION;
  /** Segment length in bytes. */
  readonly byteLength: number;
  /** Segment duration in milliseconds (from the encoder). */
  readonly durationMs: number;
  /** Lowercase hex SHA-256 of the segment bytes. */
  readonly sha256: string;
  /** Lowercase hex SHA-256 of the previous record's payload in the same channel and rendition. */
  readonly prevHash: string;
  /** Wall-clock time of publication (ms since the Unix epoch). */
  readonly publishedAtMs: number;
}

export interface Attestation extends AttestationBody {
  /** base64url Ed25519 signature over {@link attestationPayload}. */
  readonly signature: string;
}

export type Check = { ok: true } | { ok: false; code: AttestationErrorCode; message: string };

const OK: Check = { ok: true };
const fail = (code: AttestationErrorCode, message: string): Check => ({ ok: false, code, message });

/** Canonical bytes that are signed: one field per line, in a fixed order. */
export function attestationPayload(body: AttestationBody): Uint8Array {
  return utf8.encode(
    [
      `${PAYLOAD_MAGIC}/${body.v}`,
      body.channel,
      body.rendition,
      body.mediaSequence,
      body.discontinuitySequence,
      body.byteLength,
      body.durationMs,
      body.sha256,
      body.prevHash,
      body.publishedAtMs,
    ].join('\n'),
  );
}

const HASH_RE = /^[0-9a-f]{64}$/;
const FIELDS = [
  'v',
  'channel',
  'rendition',
  'mediaSequence',
  'discontinuitySequence',
  'byteLength',
  'durationMs',
  'sha256',
  'prevHash',
  'publishedAtMs',
  'signature',
] as const;

/** Strictly parses an attestation received from outside (origin, tracker or peer). */
export function parseAttestation(
  input: unknown,
): { ok: true; attestation: Attestation } | { ok: false; code: 'attestation-malformed'; message: string } {
  const bad = (message: string) => ({ ok: false as const, code: 'attestation-malformed' as const, message });
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return bad('not an object');
  const o = input as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => !(FIELDS as readonly string[]).includes(k));
  if (extra.length > 0) return bad(`unknown field ${extra[0]}`);
  if (o.v !== ATTESTATION_VERSION) return bad(`unsupported version ${String(o.v)}`);
  if (!isChannelId(o.channel)) return bad('invalid channel');
  if (!isRenditionName(o.rendition)) return bad('invalid rendition');
  for (const k of [
    'mediaSequence',
    'discontinuitySequence',
    'byteLength',
    'durationMs',
    'publishedAtMs',
  ] as const)
    if (!isSequenceNumber(o[k])) return bad(`invalid ${k}`);
  if (typeof o.sha256 !== 'string' || !HASH_RE.test(o.sha256)) return bad('invalid sha256');
  if (typeof o.prevHash !== 'string' || !HASH_RE.test(o.prevHash)) return bad('invalid prevHash');
  const sig = typeof o.signature === 'string' ? fromBase64Url(o.signature) : undefined;
  if (sig?.length !== 64) return bad('invalid signature encoding');
  return { ok: true, attestation: o as unknown as Attestation };
}

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error('WebCrypto (crypto.subtle) is not available in this runtime');
  return s;
}

const bufferOf = (bytes: Uint8Array): ArrayBuffer =>
  bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // The view itself (no copy of a whole segment): WebCrypto reads only its range.
  return toHex(new Uint8Array(await subtle().digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)));
}

/** The hash the next record of the chain carries as `prevHash`. */
export function attestationHash(body: AttestationBody): Promise<string> {
  return sha256Hex(attestationPayload(body));
}

/** Imports a channel public key (raw 32-byte Ed25519, base64url as served by the origin). */
export async function importChannelKey(publicKeyBase64Url: string): Promise<CryptoKey> {
  const raw = fromBase64Url(publicKeyBase64Url);
  if (raw?.length !== 32) throw new TypeError('channel public key must be 32 raw Ed25519 bytes, base64url');
  return subtle().importKey('raw', bufferOf(raw), { name: 'Ed25519' }, false, ['verify']);
}

/** Checks the signature of one record. */
export async function verifyAttestationSignature(att: Attestation, key: CryptoKey): Promise<Check> {
  const sig = fromBase64Url(att.signature);
  if (sig?.length !== 64) return fail('attestation-malformed', 'bad signature encoding');
  const good = await subtle().verify(
    { name: 'Ed25519' },
    key,
    bufferOf(sig),
    bufferOf(attestationPayload(att)),
  );
  return good ? OK : fail('attestation-signature-invalid', 'signature does not match the channel key');
}

/** Checks that `bytes` are the segment the record describes (length first: it is free). */
export async function checkSegmentBytes(att: AttestationBody, bytes: Uint8Array): Promise<Check> {
  if (bytes.byteLength !== att.byteLength)
    return fail('segment-length-mismatch', `expected ${att.byteLength} bytes, got ${bytes.byteLength}`);
  const digest = await sha256Hex(bytes);
  return digest === att.sha256 ? OK : fail('segment-hash-mismatch', 'SHA-256 differs from the attestation');
}

/** Checks that a record is about the segment the caller asked for. */
export function checkAttestationFor(
  att: AttestationBody,
  id: Omit<SegmentId, 'discontinuitySequence'>,
): Check {
  return att.channel === id.channel &&
    att.rendition === id.rendition &&
    att.mediaSequence === id.mediaSequence
    ? OK
    : fail('attestation-mismatch', `record is for ${att.channel}/${att.rendition}/${att.mediaSequence}`);
}

/** Full check of one segment: record signed by the channel, about that segment, matching the bytes. */
export async function verifySegment(
  att: Attestation,
  key: CryptoKey,
  id: Omit<SegmentId, 'discontinuitySequence'>,
  bytes: Uint8Array,
): Promise<Check> {
  const about = checkAttestationFor(att, id);
  if (!about.ok) return about;
  const signed = await verifyAttestationSignature(att, key);
  if (!signed.ok) return signed;
  return checkSegmentBytes(att, bytes);
}

/**
 * Checks a run of consecutive records of one rendition: signatures, strictly increasing media
 * sequence, and each `prevHash` equal to the hash of the record before it.
 */
export async function verifyChain(records: readonly Attestation[], key: CryptoKey): Promise<Check> {
  for (let i = 0; i < records.length; i++) {
    const rec = records[i]!;
    const signed = await verifyAttestationSignature(rec, key);
    if (!signed.ok) return signed;
    if (i === 0) continue;
    const prev = records[i - 1]!;
    if (rec.channel !== prev.channel || rec.rendition !== prev.rendition)
      return fail('attestation-chain-broken', `record ${i} belongs to another chain`);
    if (rec.mediaSequence <= prev.mediaSequence)
      return fail(
        'attestation-chain-broken',
        `media sequence ${rec.mediaSequence} after ${prev.mediaSequence}`,
      );
    if (rec.prevHash !== (await attestationHash(prev)))
      return fail(
        'attestation-chain-broken',
        `record ${rec.mediaSequence} does not follow ${prev.mediaSequence}`,
      );
  }
  return OK;
}
