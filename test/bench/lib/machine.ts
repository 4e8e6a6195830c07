/** Machine-wide CPU accounting (Linux /proc/stat), to tell a benchmark's own load from everyone else's. */
import { spawnSync } from 'node:child_process';
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

/** Clock ticks per second of /proc's CPU times (USER_HZ, nearly always 100). */
const TICKS_PER_S = (() => {
  const n = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** utime + stime of one /proc/…/stat file in ms; undefined when it cannot be read (process gone). */
export function statCpuMs(file: string): number | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_S) * 1000;
  } catch {
    return undefined;
  }
}

export interface ProcUsage {
  /** CPU time used so far (user + system), ms. */
  cpuMs: number;
  /** Resident set size now, bytes. */
  rssBytes: number;
}

function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The outermost descendant of `pid` whose command name matches (e.g. a browser's main process). */
export function findDescendant(pid: number, name: RegExp): number | undefined {
  // Descendants come parent first, so the first match has no matching ancestor.
  return descendants(pid).find((d) => name.test(comm(d)));
}

/** Descendants of `pid` (children, grandchildren, …) from /proc, each after its parent. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent)
      if (pp === p) {
        out.push(child);
        walk(child);
      }
  };
  walk(pid);
  return out;
}

/**
 * CPU time and RSS of a process (Linux /proc), or of it and all its descendants with `tree` (e.g. a
 * browser and its renderers). Undefined when the process is gone or /proc is unavailable. CPU of
 * descendants that already exited is not counted.
 */
export function procUsage(pid: number, tree = false): ProcUsage | undefined {
  const own = statCpuMs(`/proc/${pid}/stat`);
  if (own === undefined) return undefined;
  let cpuMs = own;
  let rssBytes = rssOf(pid);
  if (tree)
    for (const d of descendants(pid)) {
      cpuMs += statCpuMs(`/proc/${d}/stat`) ?? 0;
      rssBytes += rssOf(d);
    }
  return { cpuMs, rssBytes };
}

/** ppid, CPU time (ms) and start time (clock ticks after boot) of a process; undefined when it is gone. */
function readStat(pid: number): { ppid: number; cpuMs: number; start: number } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): ppid is field 4, utime/stime 14/15, starttime 22.
    return {
      ppid: Number(f[1]),
      cpuMs: ((Number(f[11]) + Number(f[12])) / TICKS_PER_S) * 1000,
      start: Number(f[19]),
    };
  } catch {
    return undefined;
  }
}

/** A Chromium process's role from its command line (`--type=renderer`, `gpu-process`, …; none: the browser). */
function chromiumType(pid: number): string {
  try {
    // Zygote children rewrite their title: one string, arguments separated by spaces, not NULs.
    const m = /(?:^|[\s\0])--type=([^\s\0]+)/.exec(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    return m ? m[1]! : 'browser';
  } catch {
    return 'unknown';
  }
}

/**
 * The CPU time of a process tree (a browser and all its renderers, GPU, network and audio processes)
 * as it grows: every `sample()` reads each process of the tree, and a process that has exited since
 * keeps its last reading, so closing a page does not take its CPU time out of the total.
 */
export class TreeCpu {
  readonly rootPid: number;
  /** `pid@starttime` (pids are reused) → its role and CPU time at the last reading, ms. */
  readonly #last = new Map<string, { type: string; cpuMs: number }>();

  constructor(rootPid: number) {
    this.rootPid = rootPid;
    this.sample();
  }

  /** Reads the tree now; returns its CPU time so far, ms. */
  sample(): number {
    for (const pid of [this.rootPid, ...descendants(this.rootPid)]) {
      const s = readStat(pid);
      if (!s) continue;
      const key = `${pid}@${s.start}`;
      const seen = this.#last.get(key);
      if (seen) seen.cpuMs = s.cpuMs;
      else this.#last.set(key, { type: chromiumType(pid), cpuMs: s.cpuMs });
    }
    return this.totalMs();
  }

  /** CPU time of every process seen so far (of one `--type`, e.g. 'renderer'), at its last reading, ms. */
  totalMs(type?: string): number {
    let sum = 0;
    for (const p of this.#last.values()) if (type === undefined || p.type === type) sum += p.cpuMs;
    return sum;
  }
}
