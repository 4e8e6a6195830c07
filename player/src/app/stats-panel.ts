/**
 * The watch page's stats panel: this player's figures (each written only when it changed), its own
 * share of segment bytes from peers over the trailing window, and the last minute's chart. Nothing in
 * it is updated while it is closed or the page is hidden; it is current as soon as it opens or shows.
 * The embed page has no panel: then this keeps only the own-share figure.
 */
import type { PlayerStats } from '../api.ts';
import { bitrateUnit, TimeChart } from './chart.ts';
import { formatBytes, formatKbps, formatPercent, windowLabel } from './format.ts';
import { OwnShare } from './share.ts';
import { Listeners, opt, pageHidden, setData, setText } from './util.ts';

/** One chart sample: the rates and this player's share from peers (0..1; null: nothing received). */
interface RateSample {
  at: number;
  downloadKbps: number;
  uploadKbps: number;
  ownShare: number | null;
}

const CHART_WINDOW_MS = 60_000;

export class StatsPanel {
  /** This player's own share of segment bytes from peers over the trailing window. */
  readonly ownShare = new OwnShare();
  readonly chart: TimeChart<RateSample> | undefined;
  readonly #listeners = new Listeners();
  #ownShareNow: number | null = null;
  #open = false;
  #last: PlayerStats | undefined;
  #cells: Map<string, HTMLElement> | undefined;

  constructor() {
    const canvas = opt<HTMLCanvasElement>('stats-chart');
    this.chart = canvas
      ? new TimeChart<RateSample>(canvas, {
          series: [
            { label: 'download', color: '--series-down', value: (s) => s.downloadKbps },
            { label: 'upload', color: '--series-up', value: (s) => s.uploadKbps },
            {
              label: 'your share from peers',
              color: '--series-offload',
              value: (s) => s.ownShare,
              axis: 'right',
              area: true,
              dash: [4, 3],
            },
          ],
          unit: bitrateUnit,
          windowMs: CHART_WINDOW_MS,
          minDrawIntervalMs: 1000,
          shown: false,
        })
      : undefined;
    const button = opt('stats-button');
    const panel = opt('stats-panel');
    if (button && panel) {
      this.#listeners.on(button, 'click', () => this.setOpen(panel.hidden !== false));
      const close = opt('stats-close');
      if (close) this.#listeners.on(close, 'click', () => this.setOpen(false));
    }
    this.#listeners.on(document, 'visibilitychange', () => {
      if (pageHidden()) return this.chart?.setShown(false);
      // Catch up with what happened while hidden.
      if (this.#open && this.#last) this.#render(this.#last);
      this.chart?.setShown(this.#open);
    });
  }

  /** A new player: its counters start over. */
  reset(): void {
    this.ownShare.reset();
  }

  setOpen(open: boolean): void {
    const panel = opt('stats-panel');
    const button = opt('stats-button');
    if (!panel || !button) return;
    panel.hidden = !open;
    button.setAttribute('aria-pressed', String(open));
    this.#open = open;
    if (open && this.#last) this.#render(this.#last);
    this.chart?.setShown(open && !pageHidden());
  }

  /** A `stats` event: the chart keeps the sample; the panel shows it if open and on screen. */
  push(s: PlayerStats): void {
    this.#last = s;
    const at = Date.now();
    this.#ownShareNow = this.ownShare.push(at, s.httpBytes, s.p2pBytes);
    this.chart?.push({
      at,
      downloadKbps: s.downloadKbps,
      uploadKbps: s.uploadKbps,
      ownShare: this.#ownShareNow,
    });
    if (this.#open && !pageHidden()) this.#render(s);
  }

  /** The panel's figures, each written when it changed. */
  #render(s: PlayerStats): void {
    const panel = opt('stats-panel');
    if (!panel) return;
    if (!this.#cells) {
      this.#cells = new Map();
      for (const dd of panel.querySelectorAll<HTMLElement>('[data-stat]'))
        this.#cells.set(dd.dataset.stat!, dd);
      const windowEl = opt('own-share-window');
      if (windowEl) this.#cells.set('ownShareWindow', windowEl);
    }
    const cells = this.#cells;
    const own = cells.get('ownShare');
    if (own) {
      setData(own, 'value', this.#ownShareNow === null ? '' : String(this.#ownShareNow));
      setText(own, this.#ownShareNow === null ? '—' : formatPercent(this.#ownShareNow));
    }
    const windowEl = cells.get('ownShareWindow');
    if (windowEl) setText(windowEl, `last ${windowLabel(this.ownShare.windowMs)}`);
    const fmt: Record<string, (v: never) => string> = {
      peers: (v: number) => String(v),
      downloadKbps: (v: number) => formatKbps(v),
      uploadKbps: (v: number) => formatKbps(v),
      httpBytes: (v: number) => formatBytes(v),
      p2pBytes: (v: number) => formatBytes(v),
      uploadedBytes: (v: number) => formatBytes(v),
      rendition: (v: string) => v || '—',
      bufferS: (v: number) => `${v.toFixed(1)} s`,
      latencyS: (v: number | null) => (v === null ? (s.live ? '—' : 'n/a (recording)') : `${v.toFixed(1)} s`),
      stalls: (v: number) => String(v),
      trackerConnected: (v: boolean) => (v ? 'connected' : 'not connected'),
      webrtc: (v: boolean) => (v ? 'available' : 'unavailable'),
    };
    for (const [name, dd] of cells) {
      const key = name as keyof PlayerStats;
      const f = fmt[key];
      if (!(key in s) || !f) continue;
      const value = s[key];
      setData(dd, 'value', value === null ? '' : String(value));
      setText(dd, (f as (v: unknown) => string)(value));
    }
  }

  destroy(): void {
    this.#listeners.removeAll();
    this.chart?.destroy();
  }
}
