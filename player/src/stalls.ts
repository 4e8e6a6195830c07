/**
 * Why the video stalled: each stall (a `waiting` after playback started, not a seek) is attributed to
 * one cause from what the engine and the page saw around it, most damning for PeerTV first:
 * - `p2p`: a P2P transfer of a segment the playhead needed was late (switched to HTTP too late, bytes
 *   after the deadline, or HTTP started late because the engine waited for a neighbour);
 * - `cpu`: the page's main thread was busy (long tasks) for much of the stall;
 * - `source`: the playhead had reached the newest published segment (the source or the live edge
 *   was late: no player could have played on);
 * - `origin`: the segment came over HTTP from the origin, late;
 * - `unknown`: none of these was seen.
 * Event-driven: engine events and a `longtask` PerformanceObserver, no polling.
 */

export const STALL_CAUSES = ['p2p', 'cpu', 'source', 'origin', 'unknown'] as const;
export type StallCause = (typeof STALL_CAUSES)[number];

/** A late segment the engine reported, or a segment delivered late over HTTP. */
interface LateMark {
  at: number;
  kind: 'p2p' | 'origin';
}

export interface StallProbe {
  /** Seconds of buffered media ahead of the playhead's contiguous range end, and that end. */
  bufferEndS(): number;
  /** End of the newest segment in the current media playlist (s, media time), if known. */
  liveEdgeS(): number | undefined;
}

/** Marks older than this are forgotten; a stall looks this far back before it began. */
const LOOKBACK_MS = 3000;
const MAX_MARKS = 64;
/** At the edge: the buffer ends within this of the newest published segment's end. */
const EDGE_SLACK_S = 0.25;

export class StallAttribution {
  readonly counts: Record<StallCause, number> = { p2p: 0, cpu: 0, source: 0, origin: 0, unknown: 0 };
  totalMs = 0;
  readonly #marks: LateMark[] = [];
  readonly #longTasks: { start: number; end: number }[] = [];
  #stall: { startedAt: number; atEdge: boolean } | undefined;
  #observer: PerformanceObserver | undefined;

  constructor(
    readonly probe: StallProbe,
    readonly now: () => number = () => performance.now(),
  ) {
    // Long tasks (≥ 50 ms on the main thread): where the browser supports them.
    try {
      this.#observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries())
          this.#push(this.#longTasks, { start: e.startTime, end: e.startTime + e.duration });
      });
      this.#observer.observe({ type: 'longtask', buffered: false });
    } catch {
      this.#observer = undefined;
    }
  }

  /** The engine said P2P made a segment late (`p2p-late`). */
  p2pLate(): void {
    this.#push(this.#marks, { at: this.now(), kind: 'p2p' });
  }

  /** A segment arrived over HTTP after its deadline. */
  originLate(): void {
    this.#push(this.#marks, { at: this.now(), kind: 'origin' });
  }

  /** A main-thread task of `durationMs` that ended now (for environments without `longtask`). */
  busy(durationMs: number): void {
    const end = this.now();
    this.#push(this.#longTasks, { start: end - durationMs, end });
  }

  get stalled(): boolean {
    return this.#stall !== undefined;
  }

  started(): void {
    if (this.#stall) return;
    const edge = this.probe.liveEdgeS();
    const atEdge = edge !== undefined && this.probe.bufferEndS() >= edge - EDGE_SLACK_S;
    this.#stall = { startedAt: this.now(), atEdge };
  }

  /** The stall is over (or abandoned): its cause and length. */
  ended(): { cause: StallCause; durationMs: number } | undefined {
    const s = this.#stall;
    if (!s) return undefined;
    this.#stall = undefined;
    const end = this.now();
    const durationMs = Math.max(0, end - s.startedAt);
    const from = s.startedAt - LOOKBACK_MS;
    const seen = (kind: LateMark['kind']) =>
      this.#marks.some((m) => m.kind === kind && m.at >= from && m.at <= end);
    let busyMs = 0;
    for (const t of this.#longTasks)
      busyMs += Math.max(0, Math.min(end, t.end) - Math.max(s.startedAt, t.start));
    const cause: StallCause = seen('p2p')
      ? 'p2p'
      : busyMs >= Math.min(1000, durationMs / 2) && busyMs > 0
        ? 'cpu'
        : s.atEdge
          ? 'source'
          : seen('origin')
            ? 'origin'
            : 'unknown';
    this.counts[cause]++;
    this.totalMs += durationMs;
    return { cause, durationMs };
  }

  #push<T>(list: T[], item: T): void {
    list.push(item);
    if (list.length > MAX_MARKS) list.splice(0, list.length - MAX_MARKS);
  }

  destroy(): void {
    this.#observer?.disconnect();
  }
}
