/**
 * The simulated viewers' segment store: the engine's real `MemorySegmentStore` (capacity, windows,
 * pins, eviction and its events unchanged), except that a segment whose bytes are exactly the source's
 * is kept as the source's own buffer. Every viewer holds the same few hundred segments; without this,
 * each one received from a peer is a copy of its own, and 10 000 stores of 64 MiB (scaled) outgrow
 * the machine within minutes of simulated time. Bytes that differ (a poisoner's) are kept as they are.
 * The store counts lengths, so what it decides is the same either way.
 */
import { MemorySegmentStore, type MemorySegmentStoreOptions } from '../peer/index.ts';
import type { Attestation } from '../protocol/index.ts';
import type { SimSource } from './source.ts';

/** Exact comparison by memcmp (a loop in JavaScript costs about as much as the whole receive). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

export class SharedPayloadStore extends MemorySegmentStore {
  constructor(
    private readonly source: SimSource,
    opts: MemorySegmentStoreOptions = {},
  ) {
    super(opts);
  }

  override put(
    rendition: string,
    mediaSequence: number,
    bytes: Uint8Array,
    attestation: Attestation,
  ): boolean {
    const canonical = this.source.segment(rendition, mediaSequence)?.payload;
    const shared = canonical !== undefined && canonical !== bytes && sameBytes(canonical, bytes);
    return super.put(rendition, mediaSequence, shared ? canonical : bytes, attestation);
  }
}
