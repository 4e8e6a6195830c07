/** Machine-wide CPU accounting (Linux /proc/stat), to tell a benchmark's own load from everyone else's. */
import fs from 'node:fs';
import os from 'node:os';

export interface CpuSnapshot {
  /** Busy and total time over all cores (clock ticks); undefined off Linux. */
  busy?: number;
  total?: number;
  atMs: number;
}

export function cpuSnapshot(): CpuSnapshot {
  const atMs = performance.now();
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total, atMs };
  } catch {
    return { atMs };
  }
}

/** Cores kept busy (by anything on the machine) between two snapshots; NaN when unknown. */
export function coresBusy(a: CpuSnapshot, b: CpuSnapshot): number {
  if (a.busy === undefined || b.busy === undefined || a.total === undefined || b.total === undefined)
    return NaN;
  const total = b.total - a.total;
  return total > 0 ? ((b.busy - a.busy) / total) * os.cpus().length : NaN;
}
