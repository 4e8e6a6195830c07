/**
 * What one neighbour may cost us, and how it has served us (after libp2p's resource manager and
 * BitTorrent's choking and snubbing). Every neighbour has a bounded share of our messages, memory and
 * upload; exceeding it closes that one link with a stable code (`peer-over-budget`,
 * `peer-protocol-violation`) and never costs anyone else. A neighbour whose transfers to us keep
 * failing (it announced a segment, then withheld, stalled or dripped it) is demoted for a cooling time
 * that doubles with each failure in a row, and closed (`peer-unresponsive`) after a few.
 *
 * The numbers live here; the checks live where the traffic is: `Neighbour` (what it sends us),
 * `UploadManager` (what it asks of us), the engine (its standing as a supplier). Pure: time comes in as
 * arguments.
 */

export interface BudgetOptions {
  // ---- what a neighbour sends us
  /** Control messages (everything but `data`) per second a neighbour may send, sustained… */
  messagesPerS: number;
  /** …and in a burst. More closes the link (`peer-over-budget`). */
  messageBurst: number;
  /** Ranges per rendition a neighbour's announcements may fragment into; more closes the link. */
  maxHaveRanges: number;
  /**
   * Distinct rendition names outside the channel's ladder a neighbour may mention (ignored, not held);
   * one more closes the link (`peer-protocol-violation`). Before the ladder is known, the number of
   * renditions held per neighbour (`peer-over-budget` beyond).
   */
  maxUnknownRenditions: number;
  /**
   * Data of a request we cancelled may still arrive (the sender had it queued): up to this much per
   * cancel (never more than the rest of that segment)…
   */
  lateBytesPerCancel: number;
  /** …and this much in all. Data beyond it, or for a request never made, closes the link. */
  maxLateBytes: number;
  // ---- how a neighbour serves us
  /** Failed transfers in a row (withheld, stalled, too slow) that close the link (`peer-unresponsive`). */
  maxFailures: number;
  /** After a failure, the neighbour is not asked for this long; doubled for each failure in a row… */
  demoteMs: number;
  /** …up to this. */
  demoteMaxMs: number;
}

export const DEFAULT_BUDGET: BudgetOptions = {
  messagesPerS: 100,
  messageBurst: 500,
  maxHaveRanges: 1024,
  maxUnknownRenditions: 4,
  lateBytesPerCancel: 2 * 1024 * 1024,
  maxLateBytes: 4 * 1024 * 1024,
  maxFailures: 4,
  demoteMs: 1000,
  demoteMaxMs: 16_000,
};

/** Merges and checks budget options (throws a RangeError on nonsense). */
export function budgetOptions(opts: Partial<BudgetOptions> = {}): BudgetOptions {
  const o = { ...DEFAULT_BUDGET, ...opts };
  for (const [k, v] of Object.entries(o))
    if (!(typeof v === 'number' && v >= 0)) throw new RangeError(`budget.${k} must be a number ≥ 0`);
  if (o.messagesPerS <= 0 || o.messageBurst < 1)
    throw new RangeError('budget.messagesPerS must be > 0 and budget.messageBurst ≥ 1');
  if (o.maxFailures < 1) throw new RangeError('budget.maxFailures must be ≥ 1');
  if (o.demoteMaxMs < o.demoteMs) throw new RangeError('budget.demoteMaxMs must be ≥ budget.demoteMs');
  if (o.maxLateBytes < o.lateBytesPerCancel)
    throw new RangeError('budget.maxLateBytes must be ≥ budget.lateBytesPerCancel');
  return o;
}

/**
 * What the engine knows of the stream: its renditions and top bitrate, from the tracker's channel
 * info and the master playlist. Budgets that scale with the stream read it when they need it.
 */
export interface StreamLadder {
  /** True / false once the ladder is known; undefined before. */
  has(rendition: string): boolean | undefined;
  /** Highest bitrate of the ladder (bit/s), a fixed fallback until it is known. */
  topBitrateBps(): number;
  /** Segment duration (s), a fallback until known. */
  segmentDurationS(): number;
}

/** A ladder that knows nothing (tests and tools that do not care): fallbacks everywhere. */
export const UNKNOWN_LADDER: StreamLadder = {
  has: () => undefined,
  topBitrateBps: () => 8_000_000,
  segmentDurationS: () => 2,
};

/**
 * A token bucket that may go into debt: `charge` always succeeds and may leave the level negative, so
 * a whole segment can be charged when its upload starts; `level` refills at `ratePerS()` up to
 * `capacity()` (both read at every refill: they may follow the stream's ladder).
 */
export class DebtBucket {
  #level: number;
  #at: number;

  constructor(
    now: number,
    private readonly ratePerS: () => number,
    private readonly capacity: () => number,
  ) {
    this.#level = capacity();
    this.#at = now;
  }

  level(now: number): number {
    if (now > this.#at) {
      this.#level = Math.min(this.capacity(), this.#level + ((now - this.#at) / 1000) * this.ratePerS());
      this.#at = now;
    }
    return this.#level;
  }

  charge(now: number, amount: number): void {
    this.#level = this.level(now) - amount;
  }

  /** Takes `amount` if the bucket holds it; false (and nothing taken) otherwise. */
  take(now: number, amount: number): boolean {
    if (this.level(now) < amount) return false;
    this.#level -= amount;
    return true;
  }

  /** Milliseconds until the level is above `amount` (0 when it already is). */
  msUntil(now: number, amount: number): number {
    const missing = amount - this.level(now);
    return missing < 0 ? 0 : (missing / Math.max(1e-9, this.ratePerS())) * 1000 + 1;
  }
}

/** A counter that leaks `leakPerS` per second (never below zero). */
export class LeakyCounter {
  #value = 0;
  #at = 0;

  constructor(private readonly leakPerS: number) {}

  /** Adds `n` and returns the new value. */
  add(now: number, n = 1): number {
    this.#value = this.value(now) + n;
    return this.#value;
  }

  value(now: number): number {
    if (now > this.#at) {
      this.#value = Math.max(0, this.#value - ((now - this.#at) / 1000) * this.leakPerS);
      this.#at = now;
    }
    return this.#value;
  }
}

/** The most recent `max` keys added (oldest forgotten first). */
export class RecentKeys {
  readonly #keys = new Set<string>();

  constructor(private readonly max: number) {}

  add(key: string): void {
    this.#keys.delete(key);
    this.#keys.add(key);
    if (this.#keys.size > this.max) this.#keys.delete(this.#keys.values().next().value!);
  }

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  get size(): number {
    return this.#keys.size;
  }
}

/**
 * How a neighbour has served us as a supplier: failures in a row and the demotion they earned.
 * A delivery clears the record.
 */
export class SupplierStanding {
  failures = 0;
  demotedUntil = 0;
  deliveries = 0;

  constructor(private readonly opts: Pick<BudgetOptions, 'maxFailures' | 'demoteMs' | 'demoteMaxMs'>) {}

  /** Records a failure; true when it was one too many (the link should close). */
  fail(now: number): boolean {
    this.failures++;
    const ms = Math.min(this.opts.demoteMaxMs, this.opts.demoteMs * 2 ** (this.failures - 1));
    this.demotedUntil = Math.max(this.demotedUntil, now + ms);
    return this.failures >= this.opts.maxFailures;
  }

  succeed(): void {
    this.failures = 0;
    this.demotedUntil = 0;
    this.deliveries++;
  }

  demoted(now: number): boolean {
    return now < this.demotedUntil;
  }
}

/**
 * Peers we will not link with again, each until a time; bounded (the oldest ban is forgotten first),
 * so a stream of fresh identities cannot grow it without end (the tracker rate-limits those).
 */
export class BanList {
  readonly #until = new Map<string, number>();

  constructor(readonly max: number) {}

  ban(id: string, until: number): void {
    this.#until.delete(id);
    this.#until.set(id, until);
    while (this.#until.size > this.max) this.#until.delete(this.#until.keys().next().value!);
  }

  has(id: string, now: number): boolean {
    const until = this.#until.get(id);
    if (until === undefined) return false;
    if (now < until) return true;
    this.#until.delete(id);
    return false;
  }

  get size(): number {
    return this.#until.size;
  }
}
