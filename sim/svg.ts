/**
 * Dependency-free SVG charts for the simulator's and the benchmarks' reports: histograms, line and bar
 * charts. Safe with millions of values (no spread into Math.max).
 */

const maxOf = (values: Iterable<number>, floor = -Infinity): number => {
  let m = floor;
  for (const v of values) if (v > m) m = v;
  return m;
};
const minOf = (values: Iterable<number>, ceiling = Infinity): number => {
  let m = ceiling;
  for (const v of values) if (v < m) m = v;
  return m;
};

export interface Series {
  label: string;
  points: readonly [number, number][];
  color?: string;
}

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];
const W = 720;
const H = 360;
const M = { left: 64, right: 20, top: 36, bottom: 48 };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const step0 = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function frame(title: string, xLabel: string, yLabel: string, xMin: number, xMax: number, yMax: number) {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (v: number) => M.left + ((v - xMin) / (xMax - xMin || 1)) * pw;
  const y = (v: number) => M.top + ph - (v / (yMax || 1)) * ph;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  for (const t of niceTicks(0, yMax))
    parts.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y(t)}" y2="${y(t)}" stroke="#e5e7eb"/>`,
      `<text x="${M.left - 6}" y="${y(t) + 4}" text-anchor="end">${t}</text>`,
    );
  for (const t of niceTicks(xMin, xMax))
    parts.push(`<text x="${x(t)}" y="${H - M.bottom + 16}" text-anchor="middle">${t}</text>`);
  parts.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${y(0)}" y2="${y(0)}" stroke="#111"/>`,
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${y(0)}" stroke="#111"/>`,
  );
  return { parts, x, y };
}

export function histogramSvg(p: {
  title: string;
  xLabel: string;
  values: readonly number[];
  bins?: number;
}): string {
  const bins = p.bins ?? 30;
  const min = minOf(p.values, 0);
  const max = maxOf(p.values, min + 1e-9);
  const width = (max - min) / bins;
  const counts = new Array<number>(bins).fill(0);
  for (const v of p.values) counts[Math.min(bins - 1, Math.floor((v - min) / width))]!++;
  const { parts, x, y } = frame(p.title, p.xLabel, 'count', min, max, maxOf(counts, 0));
  counts.forEach((c, i) => {
    const x0 = x(min + i * width);
    const x1 = x(min + (i + 1) * width);
    parts.push(
      `<rect x="${x0}" y="${y(c)}" width="${Math.max(1, x1 - x0 - 1)}" height="${y(0) - y(c)}" fill="${COLORS[0]}"/>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function lineSvg(p: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
}): string {
  const xs = p.series.flatMap((s) => s.points.map((pt) => pt[0]));
  const ys = p.series.flatMap((s) => s.points.map((pt) => pt[1]));
  const { parts, x, y } = frame(
    p.title,
    p.xLabel,
    p.yLabel,
    xs.length ? minOf(xs) : 0,
    xs.length ? maxOf(xs) : 1,
    maxOf(ys, 0) * 1.05,
  );
  p.series.forEach((s, i) => {
    const color = s.color ?? COLORS[i % COLORS.length];
    const d = s.points
      .map((pt, j) => `${j ? 'L' : 'M'}${x(pt[0]).toFixed(1)},${y(pt[1]).toFixed(1)}`)
      .join('');
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    parts.push(
      `<rect x="${W - M.right - 150}" y="${M.top + 4 + i * 18}" width="12" height="12" fill="${color}"/>`,
      `<text x="${W - M.right - 134}" y="${M.top + 14 + i * 18}">${esc(s.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Horizontal-axis categories with one bar per series (e.g. p50 and p95 per NAT pair). */
export function barSvg(p: {
  title: string;
  yLabel: string;
  categories: readonly string[];
  series: readonly { label: string; values: readonly number[]; color?: string }[];
}): string {
  const n = p.categories.length;
  const yMax =
    maxOf(
      p.series.flatMap((s) => s.values.filter(Number.isFinite)),
      1e-9,
    ) * 1.1;
  const { parts, y } = frame(p.title, '', p.yLabel, 0, 1, yMax);
  // frame() labels a numeric x axis: cover those tick labels, the categories go there instead.
  parts.push(`<rect x="0" y="${H - M.bottom + 2}" width="${W}" height="${M.bottom - 2}" fill="white"/>`);
  const pw = W - M.left - M.right;
  const groupW = pw / Math.max(1, n);
  const barW = (groupW * 0.8) / Math.max(1, p.series.length);
  p.categories.forEach((cat, i) => {
    const x0 = M.left + i * groupW + groupW * 0.1;
    p.series.forEach((s, j) => {
      const v = s.values[i] ?? NaN;
      if (!Number.isFinite(v)) return;
      const color = s.color ?? COLORS[j % COLORS.length];
      parts.push(
        `<rect x="${(x0 + j * barW).toFixed(1)}" y="${y(v).toFixed(1)}" width="${Math.max(1, barW - 2).toFixed(1)}" height="${(y(0) - y(v)).toFixed(1)}" fill="${color}"/>`,
      );
    });
    parts.push(
      `<text x="${(M.left + (i + 0.5) * groupW).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle">${esc(cat)}</text>`,
    );
  });
  p.series.forEach((s, j) => {
    const color = s.color ?? COLORS[j % COLORS.length];
    parts.push(
      `<rect x="${W - M.right - 150}" y="${M.top + 4 + j * 18}" width="12" height="12" fill="${color}"/>`,
      `<text x="${W - M.right - 134}" y="${M.top + 14 + j * 18}">${esc(s.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}
