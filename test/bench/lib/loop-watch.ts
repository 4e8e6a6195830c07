/**
 * Watches this process's event loop for a benchmark: delay percentiles, utilisation, garbage
 * collections, and a timeline of stalls and GC pauses in wall-clock milliseconds (epoch), so that
 * another process's slow samples can be matched against them.
 */
import { constants, monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';

export interface LoopReport {
  /** Event-loop delay beyond the expected timer period (ms). */
  lag: { p50: number; p99: number; max: number; mean: number };
  /** Event-loop utilisation, 0..1. */
  elu: number;
  /** Garbage collections (forced ones excluded): count, total and longest pause (ms). */
  gc: { count: number; totalMs: number; maxMs: number };
  /**
   * [start (epoch ms), duration (ms)] of every stall: a 5 ms timer turn more than `stallMs` late (the
   * duration is the whole turn). At most 2000 kept.
   */
  stalls: [number, number][];
  /** [start (epoch ms), duration (ms)] of every GC pause of 5 ms or more (at most 2000 kept). */
  gcPauses: [number, number][];
}

/** A loop turn this much later than its timer counts as a stall (ms). */
export const STALL_MS = 10;
const RESOLUTION_MS = 10;
const TICK_MS = 5;
const KEEP = 2000;
const epoch = (perfMs: number) => performance.timeOrigin + perfMs;

export class LoopWatch {
  readonly #lag = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  readonly #observer: PerformanceObserver;
  readonly #tick: NodeJS.Timeout;
  #eluFrom = performance.eventLoopUtilization();
  #gc = { count: 0, totalMs: 0, maxMs: 0 };
  #stalls: [number, number][] = [];
  #gcPauses: [number, number][] = [];
  #last = performance.now();

  constructor(readonly stallMs = STALL_MS) {
    this.#lag.enable();
    this.#observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const flags = (e as PerformanceEntry & { detail?: { flags?: number } }).detail?.flags ?? 0;
        if (flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) continue;
        this.#gc.count++;
        this.#gc.totalMs += e.duration;
        this.#gc.maxMs = Math.max(this.#gc.maxMs, e.duration);
        if (e.duration >= 5 && this.#gcPauses.length < KEEP)
          this.#gcPauses.push([epoch(e.startTime), e.duration]);
      }
    });
    this.#observer.observe({ entryTypes: ['gc'] });
    this.#tick = setInterval(() => {
      const now = performance.now();
      const late = now - this.#last - TICK_MS;
      if (late > this.stallMs && this.#stalls.length < KEEP)
        this.#stalls.push([epoch(this.#last), now - this.#last]);
      this.#last = now;
    }, TICK_MS);
    this.#tick.unref();
  }

  reset(): void {
    this.#last = performance.now();
    this.#lag.reset();
    this.#eluFrom = performance.eventLoopUtilization();
    this.#gc = { count: 0, totalMs: 0, maxMs: 0 };
    this.#stalls = [];
    this.#gcPauses = [];
  }

  report(): LoopReport {
    const ms = (ns: number) => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - RESOLUTION_MS) : 0);
    return {
      lag: {
        p50: ms(this.#lag.percentile(50)),
        p99: ms(this.#lag.percentile(99)),
        max: ms(this.#lag.max),
        mean: ms(this.#lag.mean),
      },
      elu: performance.eventLoopUtilization(this.#eluFrom).utilization,
      gc: { ...this.#gc },
      stalls: [...this.#stalls],
      gcPauses: [...this.#gcPauses],
    };
  }

  stop(): void {
    clearInterval(this.#tick);
    this.#lag.disable();
    this.#observer.disconnect();
  }
}
