/**
 * The watch page's P2P figure: this player's own share of segment bytes from peers over the trailing
 * window, computed like the tracker's channel offload (`tracker/stats.ts` `offloadOver`): the baseline
 * is the newest sample at least a window old; while the player is younger than the window, its start.
 */
import { OFFLOAD_WINDOW_MS } from '../../../protocol/index.ts';
import { formatPercent, windowLabel } from './format.ts';

export { windowLabel };

interface Totals {
  at: number;
  httpBytes: number;
  p2pBytes: number;
}

export class OwnShare {
  windowMs: number;
  readonly #samples: Totals[] = [];

  constructor(windowMs = OFFLOAD_WINDOW_MS) {
    this.windowMs = windowMs;
  }

  /**
   * Adds the player's cumulative counters at `at` (ms) and returns its share from peers over the
   * window (0..1), or null when it received no segment bytes in the window.
   */
  push(at: number, httpBytes: number, p2pBytes: number): number | null {
    const last = this.#samples.at(-1);
    // Counters that went back belong to a new player (the page attached again): start over.
    if (last && (httpBytes < last.httpBytes || p2pBytes < last.p2pBytes)) this.#samples.length = 0;
    this.#samples.push({ at, httpBytes, p2pBytes });
    // Keep one sample at least a window old (the baseline) and the ones after it.
    while (this.#samples.length > 1 && this.#samples[1]!.at <= at - this.windowMs) this.#samples.shift();
    const first = this.#samples[0]!;
    const base = first.at <= at - this.windowMs ? first : { httpBytes: 0, p2pBytes: 0 };
    const received = httpBytes + p2pBytes - base.httpBytes - base.p2pBytes;
    if (received <= 0) return null;
    return Math.min(1, Math.max(0, (p2pBytes - base.p2pBytes) / received));
  }

  reset(): void {
    this.#samples.length = 0;
  }
}

/** The channel's offload as the directory gives it (`ChannelInfo.offload` over `offloadWindowS`). */
export interface ChannelOffload {
  offload: number | null;
  offloadWindowS?: number;
}

const windowOf = (c: ChannelOffload) => windowLabel((c.offloadWindowS ?? OFFLOAD_WINDOW_MS / 1000) * 1000);

/** "67% offload (last 60 s)": the channel's figure, named the same on every page. */
export function offloadText(c: ChannelOffload): string {
  const pct = c.offload === null ? '—' : formatPercent(c.offload);
  return `${pct} offload (last ${windowOf(c)})`;
}

/** What "offload" means, for a tooltip. */
export function offloadTitle(c: ChannelOffload): string {
  return `Offload: the share of the segment bytes this channel's viewers received in the last ${windowOf(c)} that the origin did not send (they came from other viewers)`;
}
