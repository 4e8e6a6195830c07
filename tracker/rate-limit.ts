/** Token buckets for per-socket and per-IP rate limits. */
export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(
    readonly ratePerS: number,
    readonly burst: number,
    /** A monotonic clock in ms (performance.now by default: wall-clock steps cannot drain the bucket). */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = burst;
    this.#last = now();
  }

  /** Takes one token; false when the bucket is empty (rate exceeded). */
  take(cost = 1): boolean {
    const t = this.now();
    const elapsedMs = Math.max(0, t - this.#last);
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsedMs / 1000) * this.ratePerS);
    this.#last = t;
    if (this.#tokens < cost) return false;
    this.#tokens -= cost;
    return true;
  }
}

/** Buckets keyed by a string (e.g. IP), forgotten when idle long enough to be full again. */
export class KeyedBuckets {
  readonly #buckets = new Map<string, { bucket: TokenBucket; seen: number }>();

  constructor(
    readonly ratePerS: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  take(key: string): boolean {
    let e = this.#buckets.get(key);
    if (!e)
      this.#buckets.set(key, (e = { bucket: new TokenBucket(this.ratePerS, this.burst, this.now), seen: 0 }));
    e.seen = this.now();
    return e.bucket.take();
  }

  /** Drops buckets idle for longer than it takes to refill. */
  sweep(): void {
    const idleMs = (this.burst / this.ratePerS) * 1000;
    const now = this.now();
    for (const [k, e] of this.#buckets) if (now - e.seen > idleMs) this.#buckets.delete(k);
  }
}
