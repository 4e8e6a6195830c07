/**
 * The peer's segment cache. It holds VERIFIED segments only (the engine checks each one against its
 * signed attestation before `put`), so whatever it holds may be played and uploaded to other peers.
 *
 * Eviction, when the bytes held exceed the capacity: first segments behind the caller's live window
 * (`setWindow`), lowest media sequence first; then the oldest overall (lowest media sequence, the
 * least recently stored first among equals). Pinned segments (being played or uploaded) are never
 * evicted; while pins prevent it, `bytesUsed` may exceed `capacityBytes` until they are released.
 * `added` and `evicted` events let the engine announce `have` and `lost` to its neighbours.
 *
 * Isomorphic; the store keeps the caller's `Uint8Array`s as they are (callers must not mutate them).
 */
import { TypedEmitter, isRenditionName, isSequenceNumber, type Attestation } from '../../protocol/index.ts';

export const DEFAULT_SEGMENT_STORE_CAPACITY = 64 * 1024 * 1024;

export interface StoredSegment {
  readonly bytes: Uint8Array;
  readonly attestation: Attestation;
}

export type SegmentStoreEvents = {
  /** Segments now held (sorted media sequences). */
  added: (e: { rendition: string; seqs: number[] }) => void;
  /** Segments no longer held (sorted): evicted for space, or removed with `delete`/`clear`. */
  evicted: (e: { rendition: string; seqs: number[]; reason: 'capacity' | 'deleted' }) => void;
};

export interface SegmentStore extends TypedEmitter<SegmentStoreEvents> {
  readonly capacityBytes: number;
  readonly bytesUsed: number;
  /** Segments held, all renditions. */
  readonly count: number;
  /**
   * Stores a verified segment. Returns true when it is now held and was not before; false when it was
   * already held (kept as it was), or when it cannot stay (larger than the capacity, or the least
   * useful segment while everything else is pinned or more useful). Throws a TypeError when the
   * arguments disagree with the attestation (misuse).
   */
  put(rendition: string, mediaSequence: number, bytes: Uint8Array, attestation: Attestation): boolean;
  get(rendition: string, mediaSequence: number): StoredSegment | undefined;
  has(rendition: string, mediaSequence: number): boolean;
  /** Removes a segment (even a pinned one); emits `evicted` with reason `deleted`. */
  delete(rendition: string, mediaSequence: number): boolean;
  /** Media sequences held of a rendition, ascending. */
  held(rendition: string): number[];
  /** The same as inclusive `[from, to]` runs (the wire protocol's `have` ranges). */
  heldRanges(rendition: string): [number, number][];
  /** Renditions with at least one segment held. */
  renditions(): string[];
  /** Everything of `rendition` below `oldestUseful` is evicted first when space is needed. */
  setWindow(rendition: string, oldestUseful: number): void;
  /** Changes the capacity (evicting at once if now over it). */
  setCapacity(bytes: number): void;
  /**
   * Protects a segment from eviction (reference-counted: unpin as many times). A sequence may be pinned
   * before it is stored (it is protected as soon as it arrives).
   */
  pin(rendition: string, mediaSequence: number): void;
  unpin(rendition: string, mediaSequence: number): void;
  isPinned(rendition: string, mediaSequence: number): boolean;
  /** Drops every segment (pins and windows stay); emits `evicted` with reason `deleted`. */
  clear(): void;
}

export interface MemorySegmentStoreOptions {
  /** Bytes of segment data held at most (default 64 MiB). */
  capacityBytes?: number;
}

interface Slot extends StoredSegment {
  readonly seq: number;
  /** Insertion order (tie-breaker among equal sequence numbers of different renditions). */
  readonly order: number;
}

function checkCapacity(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0)
    throw new RangeError(`capacity must be a non-negative integer, got ${bytes}`);
  return bytes;
}

export class MemorySegmentStore extends TypedEmitter<SegmentStoreEvents> implements SegmentStore {
  readonly #renditions = new Map<string, Map<number, Slot>>();
  readonly #windows = new Map<string, number>();
  readonly #pins = new Map<string, Map<number, number>>();
  #capacity: number;
  #used = 0;
  #count = 0;
  #order = 0;

  constructor(opts: MemorySegmentStoreOptions = {}) {
    super();
    this.#capacity = checkCapacity(opts.capacityBytes ?? DEFAULT_SEGMENT_STORE_CAPACITY);
  }

  get capacityBytes(): number {
    return this.#capacity;
  }

  get bytesUsed(): number {
    return this.#used;
  }

  get count(): number {
    return this.#count;
  }

  put(rendition: string, mediaSequence: number, bytes: Uint8Array, attestation: Attestation): boolean {
    if (!isRenditionName(rendition)) throw new TypeError(`invalid rendition ${JSON.stringify(rendition)}`);
    if (!isSequenceNumber(mediaSequence)) throw new TypeError(`invalid media sequence ${mediaSequence}`);
    if (!(bytes instanceof Uint8Array)) throw new TypeError('segment bytes must be a Uint8Array');
    if (
      attestation?.rendition !== rendition ||
      attestation.mediaSequence !== mediaSequence ||
      attestation.byteLength !== bytes.byteLength
    )
      throw new TypeError(`attestation does not describe ${rendition}/${mediaSequence}`);
    let map = this.#renditions.get(rendition);
    if (map?.has(mediaSequence)) return false;
    if (bytes.byteLength > this.#capacity) return false;
    if (!map) this.#renditions.set(rendition, (map = new Map()));
    map.set(mediaSequence, { seq: mediaSequence, bytes, attestation, order: this.#order++ });
    this.#used += bytes.byteLength;
    this.#count++;
    const evicted = this.#evict();
    const kept = map.has(mediaSequence);
    if (kept) this.emit('added', { rendition, seqs: [mediaSequence] });
    this.#announce(evicted, 'capacity', kept ? undefined : { rendition, seq: mediaSequence });
    return kept;
  }

  get(rendition: string, mediaSequence: number): StoredSegment | undefined {
    const slot = this.#renditions.get(rendition)?.get(mediaSequence);
    return slot && { bytes: slot.bytes, attestation: slot.attestation };
  }

  has(rendition: string, mediaSequence: number): boolean {
    return this.#renditions.get(rendition)?.has(mediaSequence) ?? false;
  }

  delete(rendition: string, mediaSequence: number): boolean {
    if (!this.#remove(rendition, mediaSequence)) return false;
    this.emit('evicted', { rendition, seqs: [mediaSequence], reason: 'deleted' });
    return true;
  }

  held(rendition: string): number[] {
    const map = this.#renditions.get(rendition);
    return map ? [...map.keys()].sort((a, b) => a - b) : [];
  }

  heldRanges(rendition: string): [number, number][] {
    return toRanges(this.held(rendition));
  }

  renditions(): string[] {
    return [...this.#renditions.keys()].sort();
  }

  setWindow(rendition: string, oldestUseful: number): void {
    if (!Number.isSafeInteger(oldestUseful)) throw new TypeError(`invalid window start ${oldestUseful}`);
    this.#windows.set(rendition, oldestUseful);
  }

  setCapacity(bytes: number): void {
    this.#capacity = checkCapacity(bytes);
    this.#announce(this.#evict(), 'capacity');
  }

  pin(rendition: string, mediaSequence: number): void {
    let pins = this.#pins.get(rendition);
    if (!pins) this.#pins.set(rendition, (pins = new Map()));
    pins.set(mediaSequence, (pins.get(mediaSequence) ?? 0) + 1);
  }

  unpin(rendition: string, mediaSequence: number): void {
    const pins = this.#pins.get(rendition);
    const n = pins?.get(mediaSequence);
    if (!pins || n === undefined) return;
    if (n > 1) return void pins.set(mediaSequence, n - 1);
    pins.delete(mediaSequence);
    if (pins.size === 0) this.#pins.delete(rendition);
    this.#announce(this.#evict(), 'capacity');
  }

  isPinned(rendition: string, mediaSequence: number): boolean {
    return this.#pins.get(rendition)?.has(mediaSequence) ?? false;
  }

  clear(): void {
    const gone = [...this.#renditions].map(([rendition, map]) => ({ rendition, seqs: [...map.keys()] }));
    this.#renditions.clear();
    this.#used = 0;
    this.#count = 0;
    for (const { rendition, seqs } of gone)
      if (seqs.length)
        this.emit('evicted', { rendition, seqs: seqs.sort((a, b) => a - b), reason: 'deleted' });
  }

  #remove(rendition: string, seq: number): boolean {
    const map = this.#renditions.get(rendition);
    const slot = map?.get(seq);
    if (!map || !slot) return false;
    map.delete(seq);
    if (map.size === 0) this.#renditions.delete(rendition);
    this.#used -= slot.bytes.byteLength;
    this.#count--;
    return true;
  }

  /** Evicts until within capacity; returns what went. */
  #evict(): { rendition: string; seq: number }[] {
    if (this.#used <= this.#capacity) return [];
    const candidates: { rendition: string; slot: Slot; behind: boolean }[] = [];
    for (const [rendition, map] of this.#renditions) {
      const window = this.#windows.get(rendition);
      const pins = this.#pins.get(rendition);
      for (const slot of map.values())
        if (!pins?.has(slot.seq))
          candidates.push({ rendition, slot, behind: window !== undefined && slot.seq < window });
    }
    candidates.sort(
      (a, b) => Number(b.behind) - Number(a.behind) || a.slot.seq - b.slot.seq || a.slot.order - b.slot.order,
    );
    const out: { rendition: string; seq: number }[] = [];
    for (const c of candidates) {
      if (this.#used <= this.#capacity) break;
      this.#remove(c.rendition, c.slot.seq);
      out.push({ rendition: c.rendition, seq: c.slot.seq });
    }
    return out;
  }

  #announce(
    evicted: { rendition: string; seq: number }[],
    reason: 'capacity' | 'deleted',
    silent?: { rendition: string; seq: number },
  ): void {
    const by = new Map<string, number[]>();
    for (const e of evicted) {
      if (silent && e.rendition === silent.rendition && e.seq === silent.seq) continue;
      let list = by.get(e.rendition);
      if (!list) by.set(e.rendition, (list = []));
      list.push(e.seq);
    }
    for (const [rendition, seqs] of by)
      this.emit('evicted', { rendition, seqs: seqs.sort((a, b) => a - b), reason });
  }
}

/** Ascending sequence numbers → inclusive `[from, to]` runs. */
export function toRanges(sorted: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const n of sorted) {
    const last = out.at(-1);
    if (last && n === last[1] + 1) last[1] = n;
    else out.push([n, n]);
  }
  return out;
}
