/**
 * The stats panel's chart: download and upload rates (left axis, kbit/s) and the share of bytes from
 * peers (right axis, %) over the last minute, one sample per `stats` event. Plain canvas.
 */
import { cssVar } from './util.ts';

export interface ChartSample {
  at: number;
  downloadKbps: number;
  uploadKbps: number;
  p2pShare: number;
}

const WINDOW_MS = 60_000;

function niceMax(v: number): number {
  if (v <= 0) return 100;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 4, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export class RateChart {
  readonly samples: ChartSample[] = [];
  readonly #canvas: HTMLCanvasElement;
  #observer: ResizeObserver | undefined;

  constructor(canvas: HTMLCanvasElement) {
    this.#canvas = canvas;
    if (typeof ResizeObserver === 'function') {
      this.#observer = new ResizeObserver(() => this.draw());
      this.#observer.observe(canvas);
    }
  }

  push(s: ChartSample): void {
    this.samples.push(s);
    while (this.samples.length > 0 && this.samples[0]!.at < s.at - WINDOW_MS - 2000) this.samples.shift();
    this.draw();
  }

  draw(): void {
    const c = this.#canvas;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w === 0 || h === 0) return; // panel closed
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    if (!g) return;
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
    const maxRate = niceMax(Math.max(1, ...this.samples.map((s) => Math.max(s.downloadKbps, s.uploadKbps))));
    const yRate = (v: number) => top + ph - (v / maxRate) * ph;
    const yShare = (v: number) => top + ph - v * ph;

    // Grid and axes.
    g.strokeStyle = cssVar('--grid', '#2a3441');
    g.fillStyle = cssVar('--faint', '#8a95a3');
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

    // P2P share: a filled area behind the rate lines.
    const share = cssVar('--series-offload', '#0f9d76');
    g.beginPath();
    g.moveTo(x(visible[0]!.at), yShare(0));
    for (const s of visible) g.lineTo(x(s.at), yShare(Math.min(1, Math.max(0, s.p2pShare))));
    g.lineTo(x(visible.at(-1)!.at), yShare(0));
    g.closePath();
    g.globalAlpha = 0.18;
    g.fillStyle = share;
    g.fill();
    g.globalAlpha = 1;
    const line = (
      color: string,
      value: (s: ChartSample) => number,
      y: (v: number) => number,
      dash: number[] = [],
    ) => {
      g.beginPath();
      visible.forEach((s, i) => (i === 0 ? g.moveTo(x(s.at), y(value(s))) : g.lineTo(x(s.at), y(value(s)))));
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.setLineDash(dash);
      g.lineJoin = 'round';
      g.stroke();
      g.setLineDash([]);
    };
    line(share, (s) => Math.min(1, Math.max(0, s.p2pShare)), yShare, [4, 3]);
    line(cssVar('--series-up', '#e8890c'), (s) => s.uploadKbps, yRate);
    line(cssVar('--series-down', '#2f7de1'), (s) => s.downloadKbps, yRate);
    g.restore();
    g.font = font;
  }

  destroy(): void {
    this.#observer?.disconnect();
  }
}
