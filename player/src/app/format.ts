/**
 * Figures as text, for the player's pages and the tracker dashboard (tracker/dashboard/dashboard.ts
 * bundles this same file), so a figure reads and rounds the same wherever it is shown. Decimal units
 * (1 kB = 1000 B, 1 kbit/s = 1000 bit/s); about three significant digits; non-finite input gives a
 * placeholder rather than "NaN".
 */

/** 0 → "0 kbit/s", 45.25 → "45.3 kbit/s", 1234 → "1.2 Mbit/s", 25_000 → "25 Mbit/s", 2e6 → "2.0 Gbit/s". */
export function formatKbps(kbps: number): string {
  if (!Number.isFinite(kbps) || kbps <= 0) return '0 kbit/s';
  if (kbps >= 1e6) return `${(kbps / 1e6).toFixed(kbps >= 1e7 ? 0 : 1)} Gbit/s`;
  if (kbps >= 1000) return `${(kbps / 1000).toFixed(kbps >= 10_000 ? 0 : 1)} Mbit/s`;
  return `${kbps.toFixed(kbps >= 100 ? 0 : 1)} kbit/s`;
}

/** 0 → "0 B", 999 → "999 B", 1234 → "1.2 kB", 123_456 → "123 kB", 5e9 → "5.0 GB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes <= 0) return '0 B';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = bytes;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(i === 0 || v >= 100 ? 0 : 1)} ${units[i]}`;
}

/**
 * A ratio (0..1) as a percentage: whole percents, one decimal under 1 % so a small non-zero share does
 * not read as 0; "—" when unknown. `separator` goes between the number and the sign (the dashboard
 * writes "67 %", the player "67%").
 */
export function formatPercent(ratio: number | null | undefined, separator = ''): string {
  if (typeof ratio !== 'number' || !Number.isFinite(ratio)) return '—';
  const p = ratio * 100;
  return `${p > 0 && p < 1 ? p.toFixed(1) : Math.round(p)}${separator}%`;
}

/** A duration: 75 → "1:15", 3700 → "1:01:40". */
export function formatClock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '0:00';
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A wall-clock time (local), from ms since the epoch: "14:05:09", or "14:05" without seconds. */
export function formatTimeOfDay(ms: number, withSeconds = true): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
  return withSeconds ? `${hm}:${p(d.getSeconds())}` : hm;
}

/** A trailing window for labels: 60 000 → "60 s", 120 000 → "2 min". */
export function windowLabel(ms: number): string {
  const s = Math.round(ms / 1000);
  return s % 60 === 0 && s >= 120 ? `${s / 60} min` : `${s} s`;
}
