/**
 * The one time-series chart of the product: the watch page's stats panel (rates and this player's share
 * from peers over the last minute) and the tracker dashboard's charts (viewers, offload, bitrates over
 * the history the tracker keeps; tracker/dashboard/dashboard.ts bundles this same file).
 *
 * Hand-written on a canvas rather than uPlot: what both pages need (a few line series, gaps where a
 * value is unknown, an optional area, a second 0–100 % axis, a fixed trailing window or the whole
 * history, a legend that reads out the sample under the pointer) is this one file, 7.7 kB minified and
 * 3.5 kB gzipped, while uPlot would add some 45–50 kB minified (plus its stylesheet) to each page for
 * what neither uses (zoom, cursor sync, plugins), and a dependency to keep up.
 *
 * It costs nothing while nobody looks: it draws in an animation frame (none run in a hidden page), only
 * when something changed (new samples, a resize, the pointer, the colour scheme), never while the page
 * says it is not shown (`setShown(false)`: the player's closed stats panel), and new data no more often
 * than `minDrawIntervalMs`. Listeners it adds (resize, colour scheme, pointer) go with `destroy()`.
 */
import { formatPercent, formatTimeOfDay } from './format.ts';
import { cssVar } from './util.ts';

export interface ChartSeries<S> {
  label: string;
  /** Custom property holding its colour (`--series-down`). */
  color: string;
  /** The value of a sample, in the axis's unit; null or non-finite: unknown (a gap in the line). */
  value: (s: S) => number | null;
  /** `right`: the 0..1 ratio axis, labelled in percent. Default: the left axis. */
  axis?: 'left' | 'right';
  /** A soft area under the line. */
  area?: boolean;
  dash?: number[];
}

export interface ChartOptions<S> {
  series: ChartSeries<S>[];
  /** The left axis's divisor and the unit written above it, for the largest value shown. */
  unit: (max: number) => { div: number; label: string };
  /** The left axis's top, in displayed units (after `div`); default: a nice number above the data. */
  fixedMax?: number;
  /** The left axis counts things (viewers): whole steps. */
  integer?: boolean;
  /**
   * Shows exactly this trailing window (ms) ending at the newest sample, labelled relative to it
   * ("-30 s", "now"). Default: all samples (spanning at least `MIN_WINDOW_SAMPLES` intervals), labelled
   * with clock times.
   */
  windowMs?: number;
  /**
   * A `<ul>` to fill with one entry per series and the value of the newest sample (or the one under the
   * pointer: hovering the canvas then reads samples out, with their time in a `.legend-time` entry).
   */
  legend?: { element: HTMLElement; value: (v: number | null) => string };
  /** New data is drawn at most this often (a resize or the pointer draws in the next frame). */
  minDrawIntervalMs: number;
  /** Written in the middle while there are no samples. */
  placeholder: string;
  /** Whether the chart is on screen from the start (see `setShown`). */
  shown: boolean;
}

export const DEFAULT_CHART: Omit<ChartOptions<never>, 'series' | 'unit'> = {
  minDrawIntervalMs: 0,
  placeholder: 'waiting for samples…',
  shown: true,
};

/** A chart with no fixed window spans at least this many sampling intervals (a young history is not stretched). */
const MIN_WINDOW_SAMPLES = 30;
const TIME_STEPS_MS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * 1000);
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif';

/** Ticks for [0, max]: a step of 1, 2, 2.5 or 5 × 10^n giving about `count` intervals. */
export function niceScale(
  max: number,
  count: number,
  integer = false,
): { step: number; top: number; decimals: number } {
  if (!(max > 0)) max = integer ? 4 : 1;
  const rough = max / count;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const norm = rough / mag;
  let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const top = Math.ceil(max / step - 1e-9) * step;
  let decimals = 0;
  while (decimals < 4 && Math.abs(step * 10 ** decimals - Math.round(step * 10 ** decimals)) > 1e-6)
    decimals++;
  return { step, top, decimals };
}

/** A bit rate axis in the unit that fits its largest value. */
export const bitrateUnit = (maxKbps: number): { div: number; label: string } =>
  maxKbps >= 1e6
    ? { div: 1e6, label: 'Gbit/s' }
    : maxKbps >= 1000
      ? { div: 1000, label: 'Mbit/s' }
      : { div: 1, label: 'kbit/s' };

interface Colors {
  grid: string;
  axis: string;
  muted: string;
  series: string[];
}

export class TimeChart<S extends { at: number }> {
  readonly #canvas: HTMLCanvasElement;
  readonly #opts: ChartOptions<S>;
  #samples: readonly S[] = [];
  #shown: boolean;
  /** Something to draw that is not on the canvas yet. */
  #dirty = true;
  #frame = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastDrawMs = -Infinity;
  #colors: Colors | undefined;
  #key = '';
  /** Time under the pointer (the legend then shows that sample), or null for the newest. */
  #hoverAt: number | null = null;
  #geometry: { left: number; pw: number; t0: number; t1: number } | undefined;
  #legendValues: HTMLElement[] = [];
  #legendTime: HTMLElement | undefined;
  readonly #cleanup: (() => void)[] = [];
  #destroyed = false;

  constructor(
    canvas: HTMLCanvasElement,
    opts: Partial<ChartOptions<S>> & Pick<ChartOptions<S>, 'series' | 'unit'>,
  ) {
    this.#canvas = canvas;
    this.#opts = { ...DEFAULT_CHART, ...opts };
    if (this.#opts.series.length === 0) throw new RangeError('a chart needs at least one series');
    if (!(this.#opts.minDrawIntervalMs >= 0)) throw new RangeError('minDrawIntervalMs must be ≥ 0');
    if (this.#opts.windowMs !== undefined && !(this.#opts.windowMs > 0))
      throw new RangeError('windowMs must be positive');
    this.#shown = this.#opts.shown;
    const redraw = () => {
      this.#dirty = true;
      this.#schedule(false);
    };
    if (typeof ResizeObserver === 'function') {
      const observer = new ResizeObserver(redraw);
      observer.observe(canvas);
      this.#cleanup.push(() => observer.disconnect());
    }
    // Theme colours are read once, and again when the colour scheme changes.
    const scheme = window.matchMedia?.('(prefers-color-scheme: dark)');
    const onScheme = () => {
      this.#colors = undefined;
      this.#fillLegendSwatches();
      redraw();
    };
    scheme?.addEventListener?.('change', onScheme);
    this.#cleanup.push(() => scheme?.removeEventListener?.('change', onScheme));
    if (this.#opts.legend) this.#buildLegend(this.#opts.legend.element);
  }

  get samples(): readonly S[] {
    return this.#samples;
  }

  /** Whether the chart is on screen (e.g. its panel is open); a chart not shown never draws. */
  setShown(shown: boolean): void {
    this.#shown = shown;
    if (shown) this.#schedule(false);
  }

  /** Appends a sample (keeping a fixed window's worth, or everything without one). */
  push(s: S): void {
    const windowMs = this.#opts.windowMs;
    const samples = [...this.#samples, s];
    if (windowMs !== undefined)
      while (samples.length > 0 && samples[0]!.at < s.at - windowMs - 2000) samples.shift();
    this.#set(samples);
  }

  /**
   * Replaces the samples (oldest first). Returns whether they changed: the length, the first and last
   * times and the newest values are compared, so an unchanged history costs no drawing.
   */
  setData(samples: readonly S[]): boolean {
    const first = samples[0];
    const last = samples.at(-1);
    const values = last ? this.#opts.series.map((s) => s.value(last)).join(',') : '';
    const key = `${samples.length}|${first?.at}|${last?.at}|${values}`;
    if (key === this.#key) return false;
    this.#set(samples, key);
    return true;
  }

  #set(samples: readonly S[], key = ''): void {
    this.#samples = samples;
    this.#key = key;
    this.#renderLegend();
    this.#dirty = true;
    this.#schedule(true);
  }

  // ------------------------------------------------------------------ legend and pointer

  #buildLegend(legend: HTMLElement): void {
    this.#legendValues = this.#opts.series.map((s) => {
      const li = document.createElement('li');
      const sw = document.createElement('span');
      sw.className = 'sw';
      const b = document.createElement('b');
      b.textContent = '—';
      li.append(sw, document.createTextNode(s.label), b);
      legend.appendChild(li);
      return b;
    });
    this.#legendTime = document.createElement('li');
    this.#legendTime.className = 'legend-time';
    legend.appendChild(this.#legendTime);
    this.#fillLegendSwatches();
    const c = this.#canvas;
    const onMove = (e: PointerEvent) => {
      const g = this.#geometry;
      if (!g) return;
      const px = e.clientX - c.getBoundingClientRect().left;
      this.#hover(px < g.left || px > g.left + g.pw ? null : g.t0 + ((px - g.left) / g.pw) * (g.t1 - g.t0));
    };
    const onLeave = () => this.#hover(null);
    c.addEventListener('pointermove', onMove);
    c.addEventListener('pointerleave', onLeave);
    this.#cleanup.push(() => {
      c.removeEventListener('pointermove', onMove);
      c.removeEventListener('pointerleave', onLeave);
    });
  }

  #fillLegendSwatches(): void {
    const legend = this.#opts.legend?.element;
    if (!legend) return;
    legend.querySelectorAll<HTMLElement>('.sw').forEach((sw, i) => {
      const s = this.#opts.series[i];
      if (s) sw.style.background = cssVar(s.color, '#888');
    });
  }

  #hover(at: number | null): void {
    if (at === this.#hoverAt) return;
    this.#hoverAt = at;
    this.#renderLegend();
    this.#dirty = true;
    this.#schedule(false);
  }

  /** The sample under the pointer, if any. */
  #hovered(): S | undefined {
    const at = this.#hoverAt;
    if (at === null) return undefined;
    let best: S | undefined;
    for (const s of this.#samples) if (!best || Math.abs(s.at - at) < Math.abs(best.at - at)) best = s;
    return best;
  }

  #renderLegend(): void {
    const legend = this.#opts.legend;
    if (!legend) return;
    const hovered = this.#hovered();
    const shown = hovered ?? this.#samples.at(-1);
    this.#opts.series.forEach((s, i) => {
      const text = shown ? legend.value(finite(s.value(shown))) : '—';
      const b = this.#legendValues[i];
      if (b && b.textContent !== text) b.textContent = text;
    });
    const time = hovered ? `at ${formatTimeOfDay(hovered.at)}` : '';
    if (this.#legendTime && this.#legendTime.textContent !== time) this.#legendTime.textContent = time;
  }

  // ------------------------------------------------------------------ drawing

  /** Draws in the next animation frame if shown and changed; new data no more than once an interval. */
  #schedule(throttled: boolean): void {
    if (this.#destroyed || !this.#shown || !this.#dirty || this.#frame || this.#timer) return;
    const waitMs = throttled ? this.#lastDrawMs + this.#opts.minDrawIntervalMs - performance.now() : 0;
    const inFrame = () => {
      this.#frame = requestAnimationFrame(() => {
        this.#frame = 0;
        if (this.#shown && this.#dirty && !this.#destroyed) this.draw();
      });
    };
    if (waitMs > 0)
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        inFrame();
      }, waitMs);
    else inFrame();
  }

  #readColors(): Colors {
    return (this.#colors ??= {
      grid: cssVar('--grid', '#2a3441'),
      axis: cssVar('--axis', cssVar('--faint', '#8a95a3')),
      muted: cssVar('--muted', '#8a95a3'),
      series: this.#opts.series.map((s) => cssVar(s.color, '#888')),
    });
  }

  /** Draws now (normally called from the animation frame the chart asks for). */
  draw(): void {
    const c = this.#canvas;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w === 0 || h === 0) return; // not laid out (a closed panel)
    this.#dirty = false;
    this.#lastDrawMs = performance.now();
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const ctx = c.getContext('2d');
    if (!ctx) return;
    const colors = this.#readColors();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    const { series, fixedMax, integer, windowMs } = this.#opts;
    const data = this.#samples;
    if (data.length === 0) {
      ctx.fillStyle = colors.muted;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText(this.#opts.placeholder, w / 2, h / 2);
      this.#geometry = undefined;
      return;
    }

    // Scales: the left axis from the data (or fixed), the right one 0..1 in percent.
    let max = 0;
    for (const s of data)
      for (const ser of series) {
        const v = finite(ser.value(s));
        if (ser.axis !== 'right' && v !== null) max = Math.max(max, v);
      }
    const unit = this.#opts.unit(max);
    const scale = niceScale(fixedMax ?? max / unit.div, 4, integer);
    const yTop = scale.top;
    const rightAxis = series.some((s) => s.axis === 'right');

    const t1 = data.at(-1)!.at;
    const spacing = data.length > 1 ? (t1 - data[0]!.at) / (data.length - 1) : 2000;
    const t0 =
      windowMs !== undefined
        ? t1 - windowMs
        : Math.min(data[0]!.at, t1 - MIN_WINDOW_SAMPLES * Math.max(100, spacing));

    // Geometry: room for the y labels on the sides, the unit on top, time labels below.
    const yLabels: { v: number; text: string }[] = [];
    for (let v = 0; v <= yTop + 1e-9; v += scale.step) yLabels.push({ v, text: v.toFixed(scale.decimals) });
    const labelW = Math.max(...yLabels.map((l) => ctx.measureText(l.text).width));
    const left = Math.ceil(labelW) + 12;
    const right = rightAxis ? Math.ceil(ctx.measureText('100%').width) + 12 : 10;
    const top = 22;
    const bottom = 22;
    const pw = w - left - right;
    const ph = h - top - bottom;
    if (pw < 20 || ph < 20) return;
    this.#geometry = { left, pw, t0, t1 };
    const x = (t: number) => left + ((t - t0) / Math.max(1, t1 - t0)) * pw;
    const yOf = (ser: ChartSeries<S>) =>
      ser.axis === 'right'
        ? (v: number) => top + ph - Math.min(1, Math.max(0, v)) * ph
        : (v: number) => top + ph - (v / unit.div / yTop) * ph;

    // Grid and y labels.
    ctx.lineWidth = 1;
    ctx.strokeStyle = colors.grid;
    ctx.fillStyle = colors.muted;
    ctx.textBaseline = 'middle';
    for (const l of yLabels) {
      const yy = Math.round(top + ph - (l.v / yTop) * ph) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(left + pw, yy);
      ctx.stroke();
      ctx.textAlign = 'right';
      ctx.fillText(l.text, left - 6, yy);
    }
    ctx.textBaseline = 'alphabetic';
    ctx.textAlign = 'left';
    ctx.fillText(unit.label, 2, 11);
    if (rightAxis) {
      ctx.textBaseline = 'middle';
      for (let i = 0; i <= 4; i++) ctx.fillText(formatPercent(i / 4), left + pw + 6, top + ph - (ph * i) / 4);
    }

    // Time axis.
    const maxTicks = Math.max(2, Math.floor(pw / 72));
    const span = t1 - t0;
    const step = TIME_STEPS_MS.find((s) => span / s <= maxTicks) ?? TIME_STEPS_MS.at(-1)!;
    ctx.strokeStyle = colors.axis;
    ctx.beginPath();
    ctx.moveTo(left, top + ph + 0.5);
    ctx.lineTo(left + pw, top + ph + 0.5);
    ctx.stroke();
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    // A fixed window counts back from the newest sample; otherwise ticks fall on round clock times.
    const ticks: { t: number; text: string }[] = [];
    if (windowMs !== undefined)
      for (let k = 0; k * step <= span + 1; k++)
        ticks.push({ t: t1 - k * step, text: k === 0 ? 'now' : `-${(k * step) / 1000} s` });
    else
      for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step)
        ticks.push({ t, text: formatTimeOfDay(t, step < 60_000) });
    for (const { t, text } of ticks) {
      const xx = Math.round(x(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(xx, top + ph);
      ctx.lineTo(xx, top + ph + 4);
      ctx.stroke();
      const tw = ctx.measureText(text).width / 2;
      ctx.fillText(text, Math.min(Math.max(xx, left + tw), w - tw - 1), top + ph + 6);
    }

    // Series: lines with gaps where the value is unknown, areas first so lines stay on top.
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 3, pw + 3, ph + 6);
    ctx.clip();
    const hovered = this.#hovered();
    const visible = data.filter((s) => s.at >= t0 - spacing);
    const runsOf = (ser: ChartSeries<S>): [number, number][][] => {
      const y = yOf(ser);
      const runs: [number, number][][] = [];
      let run: [number, number][] = [];
      for (const s of visible) {
        const v = finite(ser.value(s));
        if (v !== null) run.push([x(s.at), y(v)]);
        else if (run.length) {
          runs.push(run);
          run = [];
        }
      }
      if (run.length) runs.push(run);
      return runs;
    };
    const drawn = series.map((ser, i) => ({ ser, color: colors.series[i]!, runs: runsOf(ser) }));
    for (const { ser, color, runs } of drawn) {
      if (!ser.area) continue;
      for (const r of runs) {
        if (r.length < 2) continue;
        ctx.beginPath();
        ctx.moveTo(r[0]![0], top + ph);
        for (const [px, py] of r) ctx.lineTo(px, py);
        ctx.lineTo(r.at(-1)![0], top + ph);
        ctx.closePath();
        ctx.globalAlpha = 0.15;
        ctx.fillStyle = color;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
    }
    // Drawn last-first, so the first series (the main one) is on top.
    for (const { ser, color, runs } of [...drawn].reverse()) {
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.lineCap = 'round';
      ctx.setLineDash(ser.dash ?? []);
      for (const r of runs) {
        ctx.beginPath();
        r.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
        ctx.stroke();
        if (r.length === 1) {
          ctx.beginPath();
          ctx.arc(r[0]![0], r[0]![1], 2.5, 0, Math.PI * 2);
          ctx.fill();
        }
      }
      ctx.setLineDash([]);
      // The sample the legend reads out.
      const at = (hovered ?? visible.at(-1))?.at;
      const v = hovered ?? visible.at(-1);
      const value = v ? finite(ser.value(v)) : null;
      if (this.#opts.legend && at !== undefined && value !== null) {
        ctx.beginPath();
        ctx.arc(x(at), yOf(ser)(value), 3.5, 0, Math.PI * 2);
        ctx.fill();
      }
    }
    ctx.restore();

    if (hovered) {
      const hx = Math.round(x(hovered.at)) + 0.5;
      ctx.strokeStyle = colors.axis;
      ctx.setLineDash([3, 3]);
      ctx.beginPath();
      ctx.moveTo(hx, top);
      ctx.lineTo(hx, top + ph);
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  /** Stops drawing and removes its listeners (idempotent). */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    cancelAnimationFrame(this.#frame);
    clearTimeout(this.#timer);
    for (const f of this.#cleanup.splice(0)) f();
  }
}

function finite(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
