/**
 * `--byte-scale`: payloads and every capacity shrink by one factor, so transfer times stay the same.
 * For the engines to decide as they would at full size, every setting counted in bytes shrinks by the
 * same factor: chunk size (so a segment is as many messages, pipelined the same through the FIFOs),
 * buffers and budgets, the store, the smallest transfer that counts as a throughput sample and the
 * throughputs assumed until measured. Bitrates and capacities are scaled where they are made (source,
 * network, origin); counts of segments, times and rates relative to the bitrate need nothing.
 */
import {
  DEFAULT_BUDGET,
  DEFAULT_ENGINE,
  DEFAULT_SEGMENT_STORE_CAPACITY,
  DEFAULT_UPLOAD,
  type EngineOptions,
} from '../peer/index.ts';

/** A size (or rate) in bytes at `scale`: whole, and never 0. */
export const scaleBytes = (n: number, scale: number): number => Math.max(1, Math.round(n * scale));

/** The engine options counted in bytes, at `scale`. */
export function scaledEngineBytes(
  scale: number,
): Pick<
  EngineOptions,
  'minThroughputSampleBytes' | 'priorNeighbourBps' | 'priorHttpBps' | 'upload' | 'budget'
> {
  const bytes = (n: number) => scaleBytes(n, scale);
  return {
    minThroughputSampleBytes: bytes(DEFAULT_ENGINE.minThroughputSampleBytes),
    priorNeighbourBps: bytes(DEFAULT_ENGINE.priorNeighbourBps),
    priorHttpBps: bytes(DEFAULT_ENGINE.priorHttpBps),
    upload: {
      chunkBytes: bytes(DEFAULT_UPLOAD.chunkBytes),
      highWaterBytes: bytes(DEFAULT_UPLOAD.highWaterBytes),
    },
    budget: {
      lateBytesPerCancel: bytes(DEFAULT_BUDGET.lateBytesPerCancel),
      maxLateBytes: bytes(DEFAULT_BUDGET.maxLateBytes),
    },
  };
}

/** The segment store's capacity at `scale`. */
export const scaledStoreBytes = (scale: number): number => scaleBytes(DEFAULT_SEGMENT_STORE_CAPACITY, scale);
