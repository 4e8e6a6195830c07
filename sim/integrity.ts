/**
 * The simulator's {@link Integrity}: cheap, deterministic checks in place of Ed25519 and SHA-256, whose
 * promises resolve at once (WebCrypto resolves off the event loop, which would make runs depend on the
 * machine). Every decision around them (hold, reject, ban, fetch again) is still the engine's real
 * code; the real checks stay covered by the real tests.
 *
 * - A record's `signature` is a 64-byte tag (base64url, so protocol's parser accepts it) derived from
 *   the channel key and the record's signed payload ({@link simSign}). A record with any field changed,
 *   or signed for another key, does not match: `attestation-signature-invalid`.
 * - A record's `sha256` is any deterministic hex string (the sim source's {@link simSegmentHash}); the
 *   segment's first {@link SIM_TAG_BYTES} bytes carry its first bytes ({@link simContentTag}), the rest
 *   of the payload is zeros. `checkBytes` checks the length (`segment-length-mismatch`), then that tag
 *   (`segment-hash-mismatch`, the code the real check gives). Bytes changed beyond the tag go unnoticed:
 *   a simulated poisoner must corrupt the tag.
 */
import {
  attestationPayload,
  fromBase64Url,
  toBase64Url,
  toHex,
  type Attestation,
  type AttestationBody,
  type Check,
} from '../protocol/index.ts';
import type { Integrity, RecordVerifier } from '../peer/index.ts';

/** Bytes at the start of every simulated segment that identify it. */
export const SIM_TAG_BYTES = 8;

const OK: Check = { ok: true };

/** FNV-1a over bytes, continuing from `h`. */
function fnv1a(bytes: Uint8Array, h = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** `words` 32-bit words from a 32-bit seed (SplitMix32), big-endian. */
function expand(seed: number, words: number): Uint8Array {
  const out = new Uint8Array(words * 4);
  let s = seed >>> 0;
  for (let i = 0; i < words; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    out[i * 4] = z >>> 24;
    out[i * 4 + 1] = (z >>> 16) & 0xff;
    out[i * 4 + 2] = (z >>> 8) & 0xff;
    out[i * 4 + 3] = z & 0xff;
  }
  return out;
}

const utf8 = new TextEncoder();

/** A channel's simulated public key: 32 bytes (base64url) derived from a name (the run's seed and channel). */
export function simPublicKey(name: string): string {
  return toBase64Url(expand(fnv1a(utf8.encode(`sim-key/${name}`)), 8));
}

/** The simulated signature of a record: a tag of the channel key and the record's signed payload. */
export function simSign(body: AttestationBody, publicKey: string): string {
  return toBase64Url(expand(fnv1a(attestationPayload(body), fnv1a(utf8.encode(publicKey))), 16));
}

/** A deterministic 64-hex-digit stand-in for a SHA-256 (of the given parts). */
export function simHash(...parts: (string | number)[]): string {
  return toHex(expand(fnv1a(utf8.encode(parts.join('\n'))), 8));
}

/** The `sha256` the sim source writes for a segment. */
export function simSegmentHash(
  id: { channel: string; rendition: string; mediaSequence: number; discontinuitySequence: number },
  byteLength: number,
): string {
  return simHash('segment', id.channel, id.rendition, id.mediaSequence, id.discontinuitySequence, byteLength);
}

/** The `prevHash` the next record carries: a stand-in for the hash of this record's payload. */
export function simRecordHash(body: AttestationBody): string {
  return toHex(expand(fnv1a(attestationPayload(body)), 8));
}

/** The bytes a segment starts with: the first {@link SIM_TAG_BYTES} bytes of its record's `sha256`. */
export function simContentTag(sha256: string): Uint8Array {
  const tag = new Uint8Array(SIM_TAG_BYTES);
  for (let i = 0; i < SIM_TAG_BYTES; i++) tag[i] = parseInt(sha256.slice(2 * i, 2 * i + 2), 16) || 0;
  return tag;
}

/** A segment's simulated payload: its tag, then zeros (`byteLength` bytes in all). */
export function simPayload(sha256: string, byteLength: number): Uint8Array {
  const bytes = new Uint8Array(byteLength);
  bytes.set(simContentTag(sha256).subarray(0, Math.min(SIM_TAG_BYTES, byteLength)));
  return bytes;
}

export const simIntegrity: Integrity = {
  importKey(publicKey: string): Promise<RecordVerifier> {
    if (fromBase64Url(publicKey)?.length !== 32)
      return Promise.reject(new TypeError('channel public key must be 32 raw bytes, base64url'));
    return Promise.resolve({
      verify: (att: Attestation): Promise<Check> =>
        Promise.resolve(
          att.signature === simSign(att, publicKey)
            ? OK
            : {
                ok: false,
                code: 'attestation-signature-invalid',
                message: 'signature does not match the channel key',
              },
        ),
    });
  },
  checkBytes(att: AttestationBody, bytes: Uint8Array): Promise<Check> {
    if (bytes.byteLength !== att.byteLength)
      return Promise.resolve({
        ok: false,
        code: 'segment-length-mismatch',
        message: `expected ${att.byteLength} bytes, got ${bytes.byteLength}`,
      });
    const tag = simContentTag(att.sha256);
    const n = Math.min(SIM_TAG_BYTES, bytes.byteLength);
    for (let i = 0; i < n; i++)
      if (bytes[i] !== tag[i])
        return Promise.resolve({
          ok: false,
          code: 'segment-hash-mismatch',
          message: 'content tag differs from the attestation',
        });
    return Promise.resolve(OK);
  },
};
