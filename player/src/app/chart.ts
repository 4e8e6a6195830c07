/**
 * The stats panel's chart: download and upload rates (left axis, kbit/s) and this player's share of
 * segment bytes from peers over the trailing window (right axis, %) for the last minute, one sample per
 * `stats` event. Plain canvas.
 *
 * It costs nothing while nobody looks: samples are only kept until the page says the chart is shown
 * (`setShown(true)`: the panel is open and the page visible), it draws in an animation frame (none run
 * in a hidden page), only when something changed, and for new data at most once a second.
 */
import { cssVar } from './util.ts';

export interface ChartSample {
  at: number;
  downloadKbps: number;
  uploadKbps: number;
  /** This player's share from peers over the trailing window (0..1); null: nothing received in it. */
  ownShare: number | null;
}

const WINDOW_MS = 60_000;
/** New data is drawn at most this often. */
const MIN_DRAW_INTERVAL_MS = 1000;

function niceMax(v: number): number {
  if (v <= 0) return 100;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 4, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

interface Colors {
  grid: string;
  faint: string;
  share: string;
  up: string;
  down: string;
}

export class RateChart {
  readonly samples: ChartSample[] = [];
  readonly #canvas: HTMLCanvasElement;
  #observer: ResizeObserver | undefined;
  #shown = false;
  /** Something to draw that is not on the canvas yet. */
  #dirty = true;
  #frame = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastDrawMs = -Infinity;
  #colors: Colors | undefined;

  constructor(canvas: HTMLCanvasElement) {
    this.#canvas = canvas;
    if (typeof ResizeObserver === 'function') {
      this.#observer = new ResizeObserver(() => {
        this.#dirty = true;
        this.#schedule(false);
      });
      this.#observer.observe(canvas);
    }
    // Theme colours are read once, and again when the colour scheme changes.
    window.matchMedia?.('(prefers-color-scheme: dark)')?.addEventListener?.('change', () => {
      this.#colors = undefined;
      this.#dirty = true;
      this.#schedule(false);
    });
  }

  /** Whether the chart is on screen (panel open, page visible); a hidden chart never draws. */
  setShown(shown: boolean): void {
    this.#shown = shown;
    if (shown) this.#schedule(false);
  }

  push(s: ChartSample): void {
    this.samples.push(s);
    while (this.samples.length > 0 && this.samples[0]!.at < s.at - WINDOW_MS - 2000) this.samples.shift();
    this.#dirty = true;
    this.#schedule(true);
  }

  /** Draws in the next animation frame if shown and changed; new data no more than once a second. */
  #schedule(throttled: boolean): void {
    if (!this.#shown || !this.#dirty || this.#frame || this.#timer) return;
    const waitMs = throttled ? this.#lastDrawMs + MIN_DRAW_INTERVAL_MS - performance.now() : 0;
    const inFrame = () => {
      this.#frame = requestAnimationFrame(() => {
        this.#frame = 0;
        if (this.#shown && this.#dirty) this.draw();
      });
    };
    if (waitMs > 0)
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        inFrame();
      }, waitMs);
    else inFrame();
  }

  draw(): void {
    const c = this.#canvas;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w === 0 || h === 0) return; // panel closed
    this.#dirty = false;
    this.#lastDrawMs = performance.now();
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    if (!g) return;
    const colors = (this.#colors ??= {
      grid: cssVar('--grid', '#2a3441'),
      faint: cssVar('--faint', '#8a95a3'),
      share: cssVar('--series-offload', '#0f9d76'),
      up: cssVar('--series-up', '#e8890c'),
      down: cssVar('--series-down', '#2f7de1'),
    });
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const font = '11px system-ui, sans-serif';
    g.font = font;
    const left = 56;
    const right = 38;
    const top = 8;
    const bottom = 18;
    const pw = Math.max(10, w - left - right);
    const ph = Math.max(10, h - top - bottom);
    const now = this.samples.at(-1)?.at ?? Date.now();
    const t0 = now - WINDOW_MS;
    const x = (t: number) => left + ((t - t0) / WINDOW_MS) * pw;
    let peak = 1;
    for (const s of this.samples) peak = Math.max(peak, s.downloadKbps, s.uploadKbps);
    const maxRate = niceMax(peak);
    const yRate = (v: number) => top + ph - (v / maxRate) * ph;
    const yShare = (v: number) => top + ph - Math.min(1, Math.max(0, v)) * ph;

    // Grid and axes.
    g.strokeStyle = colors.grid;
    g.fillStyle = colors.faint;
    g.lineWidth = 1;
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(top + (ph * i) / 4) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(left + pw, y);
      g.stroke();
      const rate = maxRate * (1 - i / 4);
      g.textAlign = 'right';
      g.fillText(rate >= 1000 ? `${+(rate / 1000).toFixed(2)} M` : `${+rate.toFixed(0)} k`, left - 6, y);
      g.textAlign = 'left';
      g.fillText(`${100 - i * 25}%`, left + pw + 6, y);
    }
    g.textAlign = 'center';
    g.textBaseline = 'alphabetic';
    for (const s of [60, 45, 30, 15, 0]) g.fillText(s === 0 ? 'now' : `-${s}s`, x(now - s * 1000), h - 4);

    const visible = this.samples.filter((s) => s.at >= t0 - 1000);
    if (visible.length === 0) return;
    g.save();
    g.beginPath();
    g.rect(left, top - 1, pw, ph + 2);
    g.clip();

    // Own share from peers: a filled area behind the rate lines, broken where it is unknown.
    const runs: ChartSample[][] = [];
    let run: ChartSample[] = [];
    for (const s of visible) {
      if (s.ownShare !== null) run.push(s);
      else if (run.length) {
        runs.push(run);
        run = [];
      }
    }
    if (run.length) runs.push(run);
    for (const r of runs) {
      g.beginPath();
      g.moveTo(x(r[0]!.at), yShare(0));
      for (const s of r) g.lineTo(x(s.at), yShare(s.ownShare!));
      g.lineTo(x(r.at(-1)!.at), yShare(0));
      g.closePath();
      g.globalAlpha = 0.18;
      g.fillStyle = colors.share;
      g.fill();
      g.globalAlpha = 1;
    }
    const line = (
      points: ChartSample[],
      color: string,
      value: (s: ChartSample) => number,
      y: (v: number) => number,
      dash: number[] = [],
    ) => {
      g.beginPath();
      points.forEach((s, i) => (i === 0 ? g.moveTo(x(s.at), y(value(s))) : g.lineTo(x(s.at), y(value(s)))));
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.setLineDash(dash);
      g.lineJoin = 'round';
      g.stroke();
      g.setLineDash([]);
    };
    for (const r of runs) line(r, colors.share, (s) => s.ownShare!, yShare, [4, 3]);
    line(visible, colors.up, (s) => s.uploadKbps, yRate);
    line(visible, colors.down, (s) => s.downloadKbps, yRate);
    g.restore();
    g.font = font;
  }

  destroy(): void {
    this.#observer?.disconnect();
    cancelAnimationFrame(this.#frame);
    clearTimeout(this.#timer);
  }
}
