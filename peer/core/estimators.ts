/** Small online estimators used by the scheduler and the upload manager. */

/** Transfers smaller than this tell little about throughput (time to first byte dominates). */
export const MIN_THROUGHPUT_SAMPLE_BYTES = 32 * 1024;
/** Throughput assumed until measured (bytes/s): of a neighbour, of the origin. */
export const PRIOR_NEIGHBOUR_BPS = 1_500_000;
export const PRIOR_HTTP_BPS = 500_000;

/** Exponentially weighted moving average with a default until the first sample. */
export class Ewma {
  #value: number | undefined;
  constructor(
    readonly alpha: number,
    readonly fallback: number,
  ) {}
  add(sample: number): void {
    if (!Number.isFinite(sample)) return;
    this.#value = this.#value === undefined ? sample : this.alpha * sample + (1 - this.alpha) * this.#value;
  }
  get value(): number {
    return this.#value ?? this.fallback;
  }
  get measured(): boolean {
    return this.#value !== undefined;
  }
}

/** Bytes per second over a sliding window of `windowMs`, from timestamped byte counts. */
export class RateMeter {
  readonly #events: [number, number][] = [];
  #total = 0;
  constructor(readonly windowMs: number) {}
  add(now: number, bytes: number): void {
    this.#events.push([now, bytes]);
    this.#total += bytes;
    this.#trim(now);
  }
  /** Bytes per second over the window ending `now`. */
  rate(now: number): number {
    this.#trim(now);
    return (this.#total * 1000) / this.windowMs;
  }
  #trim(now: number): void {
    while (this.#events.length > 0 && this.#events[0]![0] <= now - this.windowMs)
      this.#total -= this.#events.shift()![1];
  }
}
