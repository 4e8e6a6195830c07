/**
 * Segments waiting for their attestation: bytes that arrived while the record could not be had (the
 * origin is down, the tracker has not pushed it yet). The owner fetches the record again with backoff
 * (`retry` after `retryMs`, doubling up to `retryMaxMs`) and checks the bytes once it has it. Whoever
 * sent them is not blamed: nothing is known against them yet.
 *
 * Bounded: at most `maxEntries` segments keep their bytes (beyond, the oldest bytes are let go, but the
 * segment keeps waiting for its record: downloading it again could not be checked either), at most
 * `4 × maxEntries` segments wait at all, each for at most `maxHoldMs`. Time comes from the injected
 * clock.
 */
import type { Clock, TimerHandle } from './seams.ts';

export interface UnverifiedHoldOptions {
  maxEntries: number;
  maxHoldMs: number;
  retryMs: number;
  retryMaxMs: number;
}

interface Entry<M> {
  meta: M;
  bytes: Uint8Array | undefined;
  heldAt: number;
  attempt: number;
  timer: TimerHandle | undefined;
}

export class UnverifiedHold<M> {
  readonly #entries = new Map<string, Entry<M>>();
  #withBytes = 0;
  #destroyed = false;

  constructor(
    private readonly clock: Clock,
    private readonly opts: UnverifiedHoldOptions,
    private readonly on: {
      /** Time to try getting the record of `key` again. */
      retry: (key: string, meta: M) => void;
      /** Bytes let go unverified (pushed out by newer ones, or waited too long). */
      bytesDropped: (key: string, meta: M) => void;
      /** `key` waits no more (waited too long, or too many wait): the owner may fetch it again. */
      released: (key: string, meta: M) => void;
    },
  ) {}

  /** Segments waiting (with or without their bytes). */
  get size(): number {
    return this.#entries.size;
  }

  /** Segments waiting with their bytes. */
  get bytesHeld(): number {
    return this.#withBytes;
  }

  /** Whether `key` waits for its record (then fetching its bytes again is pointless). */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  peek(key: string): M | undefined {
    return this.#entries.get(key)?.meta;
  }

  /** Holds `bytes` of `key` until its record is known (replacing what `key` held). */
  hold(key: string, meta: M, bytes: Uint8Array): void {
    if (this.#destroyed) return;
    this.#remove(key);
    const entry: Entry<M> = { meta, bytes, heldAt: this.clock.now(), attempt: 0, timer: undefined };
    this.#entries.set(key, entry);
    this.#withBytes++;
    // Oldest bytes go first; the segment keeps waiting without them.
    for (const [k, e] of this.#entries) {
      if (this.#withBytes <= this.opts.maxEntries) break;
      if (e.bytes) this.#dropBytes(k, e);
    }
    while (this.#entries.size > Math.max(1, 4 * this.opts.maxEntries))
      this.#release(this.#entries.keys().next().value!);
    if (this.#entries.has(key)) this.#schedule(key, entry);
  }

  /** The record of `key` is known: stops waiting, returns its bytes if they were kept. */
  take(key: string): { meta: M; bytes: Uint8Array | undefined } | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    this.#remove(key);
    return { meta: e.meta, bytes: e.bytes };
  }

  destroy(): void {
    this.#destroyed = true;
    for (const key of [...this.#entries.keys()]) this.#remove(key);
  }

  #schedule(key: string, e: Entry<M>): void {
    const delayMs = Math.min(this.opts.retryMaxMs, this.opts.retryMs * 2 ** e.attempt);
    e.timer = this.clock.setTimeout(() => {
      e.timer = undefined;
      if (this.#destroyed || this.#entries.get(key) !== e) return;
      if (this.clock.now() - e.heldAt >= this.opts.maxHoldMs) return this.#release(key);
      e.attempt++;
      this.#schedule(key, e);
      this.on.retry(key, e.meta);
    }, delayMs);
  }

  #dropBytes(key: string, e: Entry<M>): void {
    if (!e.bytes) return;
    e.bytes = undefined;
    this.#withBytes--;
    this.on.bytesDropped(key, e.meta);
  }

  #release(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    this.#dropBytes(key, e);
    this.#remove(key);
    this.on.released(key, e.meta);
  }

  #remove(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    this.clock.clearTimeout(e.timer);
    if (e.bytes) this.#withBytes--;
    this.#entries.delete(key);
  }
}
