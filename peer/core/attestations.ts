/**
 * The attestation cache: the channel's signed records, pushed by the tracker or fetched from the
 * origin, kept only once their signature checked out with the channel key (which comes from the
 * origin, never from a peer). One fetch per record at a time.
 */
import {
  checkAttestationFor,
  parseAttestation,
  segmentKey,
  type Attestation,
  type AttestationErrorCode,
} from '../../protocol/index.ts';
import type { Integrity, RecordVerifier } from './seams.ts';

export interface AttestationCacheDeps {
  /** Checks signatures (WebCrypto in the product, a stand-in in the simulator). */
  integrity: Integrity;
  /** GET a JSON document (rejects on failure). */
  getJson(url: string): Promise<unknown>;
  /** Where a segment's attestation lives on the origin. */
  recordUrl(rendition: string, mediaSequence: number): string;
  /** A record that failed its checks (reason: the stable code). */
  rejected(info: { rendition: string; mediaSequence: number; reason: AttestationErrorCode }): void;
}

export class AttestationCache {
  readonly #channel: string;
  readonly #deps: AttestationCacheDeps;
  #key: RecordVerifier | undefined;
  readonly #records = new Map<string, Attestation>();
  readonly #pending = new Map<string, Promise<Attestation | undefined>>();

  constructor(channel: string, deps: AttestationCacheDeps) {
    this.#channel = channel;
    this.#deps = deps;
  }

  /** The channel key is known: records can be checked. */
  get hasKey(): boolean {
    return this.#key !== undefined;
  }

  async setKey(publicKey: string): Promise<void> {
    this.#key = await this.#deps.integrity.importKey(publicKey);
  }

  #keyOf(rendition: string, mediaSequence: number): string {
    return segmentKey({ channel: this.#channel, rendition, mediaSequence });
  }

  /** A verified record already held, if any. */
  known(rendition: string, mediaSequence: number): Attestation | undefined {
    return this.#records.get(this.#keyOf(rendition, mediaSequence));
  }

  /**
   * A record pushed by the tracker: kept once its signature checks out. True when it was new and
   * kept (bytes waiting for it can be checked now).
   */
  async push(att: Attestation): Promise<boolean> {
    if (att.channel !== this.#channel || !this.#key) return false;
    const key = segmentKey(att);
    if (this.#records.has(key)) return false;
    const ok = await this.#verify(att, att);
    if (!ok || this.#records.has(key)) return false;
    this.#records.set(key, att);
    return true;
  }

  /** The verified record of a segment: held, pushed meanwhile, or fetched from the origin. */
  async get(rendition: string, mediaSequence: number): Promise<Attestation | undefined> {
    const key = this.#keyOf(rendition, mediaSequence);
    const known = this.#records.get(key);
    if (known) return known;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#deps
        .getJson(this.#deps.recordUrl(rendition, mediaSequence))
        .then(async (json) => {
          const parsed = parseAttestation(json);
          if (!parsed.ok) return undefined;
          return (await this.#verify(parsed.attestation, { rendition, mediaSequence }))
            ? parsed.attestation
            : undefined;
        })
        .catch(() => undefined)
        .finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    const att = await pending;
    if (att && !this.#records.has(key)) this.#records.set(key, att);
    return this.#records.get(key);
  }

  /** Forgets records of segments before `oldest` (they left the live window; any rendition). */
  pruneBefore(oldest: number): void {
    for (const [k, att] of this.#records) if (att.mediaSequence < oldest) this.#records.delete(k);
  }

  async #verify(att: Attestation, id: { rendition: string; mediaSequence: number }): Promise<boolean> {
    if (!this.#key) return false;
    const about = checkAttestationFor(att, { channel: this.#channel, ...id });
    const signed = about.ok ? await this.#key.verify(att) : about;
    if (!signed.ok)
      this.#deps.rejected({ rendition: id.rendition, mediaSequence: id.mediaSequence, reason: signed.code });
    return signed.ok;
  }
}
