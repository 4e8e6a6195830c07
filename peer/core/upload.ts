/**
 * Upload management: neighbours' requests served by urgency (earliest deadline first), a few upload
 * slots per neighbour and overall, an optional upload cap (token bucket), backpressure on the data
 * channel's `bufferedAmount`, and a measurement of the upload rate achieved while busy.
 */
import { MAX_CHUNK_BYTES } from '../../protocol/index.ts';
import { RateMeter } from './estimators.ts';
import type { Neighbour } from './neighbour.ts';
import type { Clock, TimerHandle } from './seams.ts';

export interface UploadOptions {
  /** Upload cap in kbit/s (0 = no cap). */
  capKbps: number;
  /** Concurrent uploads overall, and per neighbour. */
  slots: number;
  slotsPerNeighbour: number;
  /** Requests waiting at most; more are answered `busy`. */
  maxQueued: number;
  /** Stop writing while the channel holds this much unsent data. */
  highWaterBytes: number;
  chunkBytes: number;
}

export const DEFAULT_UPLOAD: UploadOptions = {
  capKbps: 0,
  slots: 6,
  slotsPerNeighbour: 2,
  maxQueued: 64,
  highWaterBytes: 1024 * 1024,
  chunkBytes: 16 * 1024,
};

export interface SegmentSource {
  /** Verified bytes of a segment we hold (and pin it while it uploads), or undefined. */
  acquire(rendition: string, seq: number): Uint8Array | undefined;
  release(rendition: string, seq: number): void;
}

interface Job {
  neighbour: Neighbour;
  requestId: number;
  rendition: string;
  mediaSequence: number;
  deadlineAt: number;
  bytes?: Uint8Array;
  offset: number;
}

export class UploadManager {
  readonly opts: UploadOptions;
  readonly #queue: Job[] = [];
  readonly #active = new Set<Job>();
  readonly #meter = new RateMeter(5000);
  #tokens: number;
  #lastRefill: number;
  #timer: TimerHandle | undefined;
  #busySince: number | undefined;
  #bestRateBps = 0;
  uploadedBytes = 0;
  #destroyed = false;

  constructor(
    private readonly clock: Clock,
    private readonly source: SegmentSource,
    opts: Partial<UploadOptions> = {},
  ) {
    this.opts = { ...DEFAULT_UPLOAD, ...opts };
    if (this.opts.chunkBytes > MAX_CHUNK_BYTES)
      throw new RangeError(`chunkBytes must be ≤ ${MAX_CHUNK_BYTES}`);
    if (this.opts.slotsPerNeighbour > this.opts.slots)
      throw new RangeError('slotsPerNeighbour must be ≤ slots');
    this.#tokens = this.#burst();
    this.#lastRefill = clock.now();
  }

  #burst(): number {
    return this.opts.capKbps > 0
      ? Math.max(this.opts.chunkBytes * 4, (this.opts.capKbps * 1000) / 8 / 4)
      : Infinity;
  }

  /** A neighbour asked for a segment. */
  enqueue(
    neighbour: Neighbour,
    req: { requestId: number; rendition: string; mediaSequence: number; deadlineMs: number },
  ): void {
    if (this.#destroyed) return;
    if (this.#queue.length >= this.opts.maxQueued) return neighbour.sendAbsent(req.requestId, 'busy');
    this.#queue.push({ neighbour, ...req, deadlineAt: this.clock.now() + req.deadlineMs, offset: 0 });
    this.#queue.sort((a, b) => a.deadlineAt - b.deadlineAt);
    this.#pump();
  }

  cancel(neighbour: Neighbour, requestId: number): void {
    const i = this.#queue.findIndex((j) => j.neighbour === neighbour && j.requestId === requestId);
    if (i >= 0) this.#queue.splice(i, 1);
    for (const j of this.#active) if (j.neighbour === neighbour && j.requestId === requestId) this.#finish(j);
  }

  /** Drops everything of a neighbour that closed. */
  forget(neighbour: Neighbour): void {
    for (let i = this.#queue.length - 1; i >= 0; i--)
      if (this.#queue[i]!.neighbour === neighbour) this.#queue.splice(i, 1);
    for (const j of this.#active) if (j.neighbour === neighbour) this.#finish(j);
  }

  /**
   * Upload capacity estimate (kbit/s): the best rate sustained over a window in which requests were
   * always waiting (so the link or the cap, not demand, was the limit); 0 until measured.
   */
  measuredCapacityKbps(): number {
    const measured = (this.#bestRateBps * 8) / 1000;
    return this.opts.capKbps > 0 && measured > 0 ? Math.min(this.opts.capKbps, measured) : measured;
  }

  currentRateKbps(): number {
    return (this.#meter.rate(this.clock.now()) * 8) / 1000;
  }

  get queued(): number {
    return this.#queue.length;
  }

  get active(): number {
    return this.#active.size;
  }

  /** A channel drained: continue. */
  onDrain(): void {
    this.#pump();
  }

  #finish(job: Job): void {
    if (!this.#active.delete(job)) return;
    if (job.bytes) this.source.release(job.rendition, job.mediaSequence);
  }

  #pump(): void {
    if (this.#destroyed) return;
    this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    // Start jobs while slots are free (most urgent first).
    for (let i = 0; i < this.#queue.length && this.#active.size < this.opts.slots;) {
      const job = this.#queue[i]!;
      const perNeighbour = [...this.#active].filter((j) => j.neighbour === job.neighbour).length;
      if (job.neighbour.closed) {
        this.#queue.splice(i, 1);
        continue;
      }
      if (perNeighbour >= this.opts.slotsPerNeighbour) {
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      const bytes = this.source.acquire(job.rendition, job.mediaSequence);
      if (!bytes) {
        job.neighbour.sendAbsent(job.requestId, 'not-held');
        continue;
      }
      job.bytes = bytes;
      this.#active.add(job);
    }
    if (this.#active.size === 0) {
      this.#noteBusy(false);
      return;
    }
    this.#noteBusy(true);
    // Round-robin one chunk per active job while the cap and the channels allow.
    const now = this.clock.now();
    if (this.opts.capKbps > 0) {
      this.#tokens = Math.min(
        this.#burst(),
        this.#tokens + ((now - this.#lastRefill) / 1000) * ((this.opts.capKbps * 1000) / 8),
      );
      this.#lastRefill = now;
    }
    let progressed = true;
    let blockedByCap = false;
    // Each round gives one chunk to every active upload, most urgent first: under a cap the most
    // urgent gets the tokens; without one, the channels' backpressure shares the bandwidth.
    const byUrgency = [...this.#active].sort((a, b) => a.deadlineAt - b.deadlineAt);
    while (progressed) {
      progressed = false;
      for (const job of byUrgency) {
        if (!this.#active.has(job)) continue;
        const n = job.neighbour;
        if (n.closed) {
          this.#finish(job);
          continue;
        }
        if (n.link.bufferedAmount >= this.opts.highWaterBytes) continue;
        const bytes = job.bytes!;
        const size = Math.min(this.opts.chunkBytes, bytes.byteLength - job.offset);
        if (this.#tokens < size) {
          blockedByCap = true;
          continue;
        }
        this.#tokens -= size;
        n.sendData(
          job.requestId,
          job.offset,
          bytes.byteLength,
          bytes.subarray(job.offset, job.offset + size),
        );
        job.offset += size;
        this.uploadedBytes += size;
        this.#meter.add(now, size);
        progressed = true;
        if (job.offset >= bytes.byteLength) this.#finish(job);
      }
    }
    this.#measure(now);
    if (this.#active.size > 0 || this.#queue.length > 0) {
      // Woken by a drain event, or by the token bucket refilling.
      const waitMs = blockedByCap
        ? Math.max(5, ((this.opts.chunkBytes - this.#tokens) / ((this.opts.capKbps * 1000) / 8)) * 1000)
        : 50;
      this.#timer = this.clock.setTimeout(() => this.#pump(), waitMs);
    }
  }

  #noteBusy(busy: boolean): void {
    if (busy && this.#busySince === undefined) this.#busySince = this.clock.now();
    if (!busy) this.#busySince = undefined;
  }

  #measure(now: number): void {
    // Only a window that was busy throughout says something about capacity.
    if (this.#busySince !== undefined && now - this.#busySince >= this.#meter.windowMs)
      this.#bestRateBps = Math.max(this.#bestRateBps * 0.999, this.#meter.rate(now));
  }

  destroy(): void {
    this.#destroyed = true;
    this.clock.clearTimeout(this.#timer);
    for (const j of [...this.#active]) this.#finish(j);
    this.#queue.length = 0;
  }
}
