/**
 * Virtual time for tests and the simulator: nothing happens until the owner advances the clock, then
 * due timers run synchronously in time order (ties in scheduling order), including timers scheduled by
 * timers while advancing. Pure: no real timers, no wall clock.
 */
import { MinHeap } from './heap.ts';
import type { Clock, TimerHandle } from './seams.ts';

export interface ManualClockOptions {
  /** Value of `now()` at creation (ms). Default 0. */
  startMs: number;
  /** Value of `wallNow()` at creation (ms since the Unix epoch). Default 2025-01-01T00:00:00Z. */
  wallStartMs: number;
}

export const DEFAULT_MANUAL_CLOCK: ManualClockOptions = {
  startMs: 0,
  wallStartMs: Date.UTC(2025, 0, 1),
};

/** Guards `advance`/`runUntilIdle` against timers that reschedule themselves at the same instant forever. */
const MAX_TIMERS_PER_CALL = 50_000_000;

/** A timer is its own handle. */
class Timer {
  /** Run or cleared: skipped when it reaches the top of the heap. */
  done = false;

  constructor(
    /** The clock it belongs to (a handle of another clock is ignored). */
    readonly clock: ManualClock,
    readonly dueMs: number,
    /** Scheduling order: breaks ties between timers due at the same instant. */
    readonly seq: number,
    readonly fn: () => void,
  ) {}
}

export class ManualClock implements Clock {
  #nowMs: number;
  /** wallNow() − now(). */
  #wallOffsetMs: number;
  #seq = 0;
  /** Timers scheduled and neither run nor cleared. */
  #live = 0;
  /** Timers by (dueMs, seq); cleared ones are marked done and skipped lazily. */
  readonly #heap = new MinHeap<Timer>(
    (a, b) => a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.seq < b.seq),
    (t) => t.done,
  );
  #running = false;

  constructor(opts: Partial<ManualClockOptions> = {}) {
    const o = { ...DEFAULT_MANUAL_CLOCK, ...opts };
    if (!Number.isFinite(o.startMs)) throw new RangeError('ManualClock: startMs must be a finite number');
    if (!Number.isFinite(o.wallStartMs))
      throw new RangeError('ManualClock: wallStartMs must be a finite number');
    this.#nowMs = o.startMs;
    this.#wallOffsetMs = o.wallStartMs - o.startMs;
  }

  now(): number {
    return this.#nowMs;
  }

  wallNow(): number {
    return this.#nowMs + this.#wallOffsetMs;
  }

  /** Sets the wall clock (e.g. to simulate a skewed peer) without moving monotonic time or timers. */
  setWallNow(wallMs: number): void {
    if (!Number.isFinite(wallMs)) throw new RangeError('ManualClock: wall time must be a finite number');
    this.#wallOffsetMs = wallMs - this.#nowMs;
  }

  /** Schedules `fn` at `now() + ms` (negative or NaN delays count as 0). Never runs it synchronously. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    if (typeof fn !== 'function') throw new TypeError('ManualClock.setTimeout: fn must be a function');
    const delay = Number.isNaN(ms) || ms < 0 ? 0 : ms;
    const timer = new Timer(this, this.#nowMs + delay, this.#seq++, fn);
    this.#live++;
    this.#heap.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (!(handle instanceof Timer) || handle.clock !== this || handle.done) return;
    handle.done = true;
    this.#live--;
    // Cancelled timers leave the heap lazily; rebuild it when they dominate (many cleared timeouts).
    if (this.#heap.length > 1024 && this.#heap.length > 2 * this.#live) this.#heap.compact();
  }

  /** Timers scheduled and neither run nor cleared. */
  get pendingTimers(): number {
    return this.#live;
  }

  /** Due time of the next pending timer, or undefined. */
  nextDueMs(): number | undefined {
    return this.#heap.peek()?.dueMs;
  }

  /**
   * Moves time forward by `ms`, running every timer due up to the new time in (due, scheduling) order,
   * with `now()` equal to each timer's due time while it runs. A throwing timer aborts the advance
   * (the error propagates; time stays at that timer's due time; later timers stay pending).
   * Returns the number of timers run.
   */
  advance(ms: number): number {
    if (!(ms >= 0) || !Number.isFinite(ms))
      throw new RangeError('ManualClock.advance: ms must be finite and ≥ 0');
    const targetMs = this.#nowMs + ms;
    const ran = this.#runThrough(targetMs);
    this.#nowMs = targetMs;
    return ran;
  }

  /** Advances to the absolute time `ms` (no-op if already past it). Returns the number of timers run. */
  advanceTo(ms: number): number {
    return this.advance(Math.max(0, ms - this.#nowMs));
  }

  /**
   * Runs timers (jumping time to each) until none is pending, but never past `now() + limitMs`.
   * Returns true if it went idle, false if timers are still pending at the limit (then `now()` is the
   * limit). Time stops at the last timer run when idle is reached.
   */
  runUntilIdle(limitMs = 3_600_000): boolean {
    if (!(limitMs >= 0)) throw new RangeError('ManualClock.runUntilIdle: limitMs must be ≥ 0');
    const limitAt = this.#nowMs + limitMs;
    this.#runThrough(limitAt);
    if (this.#live === 0) return true;
    if (Number.isFinite(limitAt)) this.#nowMs = limitAt;
    return false;
  }

  /**
   * Runs the one earliest pending timer if it is due at or before `limitMs` (time moves to its due
   * time), and returns true; false when none is. For drivers that let promise continuations run between
   * timers (the simulator awaits a macrotask after each), as a real event loop would.
   */
  runNext(limitMs = Infinity): boolean {
    if (this.#running) throw new Error('ManualClock: runNext() called from inside a timer');
    const next = this.#take(limitMs);
    if (!next) return false;
    this.#running = true;
    try {
      next.fn();
    } finally {
      this.#running = false;
    }
    return true;
  }

  /** Moves time to `ms` without running anything (every pending timer must be due later). */
  jumpTo(ms: number): void {
    const next = this.#heap.peek();
    if (next && next.dueMs < ms) throw new Error('ManualClock.jumpTo: a timer is due before that time');
    if (ms > this.#nowMs) this.#nowMs = ms;
  }

  #runThrough(targetMs: number): number {
    if (this.#running) throw new Error('ManualClock: advance() called from inside a timer');
    this.#running = true;
    let ran = 0;
    try {
      for (;;) {
        const next = this.#take(targetMs);
        if (!next) break;
        if (++ran > MAX_TIMERS_PER_CALL)
          throw new Error(`ManualClock: more than ${MAX_TIMERS_PER_CALL} timers in one call`);
        next.fn();
      }
    } finally {
      this.#running = false;
    }
    return ran;
  }

  /** Takes the earliest pending timer due at or before `limitMs` out, moving time to it. */
  #take(limitMs: number): Timer | undefined {
    const next = this.#heap.peek();
    if (!next || next.dueMs > limitMs) return undefined;
    this.#heap.pop();
    next.done = true;
    this.#live--;
    if (next.dueMs > this.#nowMs) this.#nowMs = next.dueMs;
    return next;
  }
}
