/**
 * `peertv source` as a child process, for tests of what only a real process shows: signals, process
 * groups, descriptor limits, a second process on the same data directory. Plus a look at the process
 * table (/proc) to find the source's ffmpeg and to tell whether a process is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './process.ts';

/** The tiny ladder of `test/helpers/source.ts` as a `--ladder` flag: encodes fast on 2 cores. */
export const TINY_LADDER_FLAG = '180p:320x180:300:48,90p:160x90:100:32';

/** Flags for a fast test-pattern source on a free port. */
export function tinySourceArgs(dataDir: string, channel: string, extra: string[] = []): string[] {
  return [
    'source',
    '--channel',
    channel,
    '--port',
    '0',
    '--data-dir',
    dataDir,
    '--ladder',
    TINY_LADDER_FLAG,
    '--fps',
    '15',
    '--preset',
    'ultrafast',
    '--segment-duration',
    '1',
    '--window',
    '4',
    ...extra,
  ];
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface SourceProcessOptions {
  /** Run in a new process group whose id is the child's pid (as a terminal runs a foreground job). */
  detached?: boolean;
  /** Command words put in front (e.g. `prlimit --nofile=400:400 --`). */
  prefix?: string[];
  /** A shell command line that runs the CLI (e.g. what `npm start` uses), instead of `node bin/peertv.js`. */
  runner?: string;
}

export class SourceProcess {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly #group: boolean;

  constructor(args: string[], opts: SourceProcessOptions = {}) {
    this.#group = opts.detached ?? false;
    const [cmd, ...argv] = opts.runner
      ? ['sh', '-c', `${opts.runner} ${args.map(shellQuote).join(' ')}`]
      : [...(opts.prefix ?? []), process.execPath, 'bin/peertv.js', ...args];
    this.child = spawn(cmd!, argv, {
      cwd: ROOT,
      detached: opts.detached ?? false,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        NODE_NO_WARNINGS: '1',
        // As npm runs scripts: the package's own commands first on the PATH.
        PATH: `${path.join(ROOT, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH ?? ''}`,
      },
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Resolves with the first match of `re` in the output; rejects after `timeoutMs` or when the process ends. */
  async waitFor(re: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.output);
      if (m) return m;
      if (!this.running)
        throw new Error(`process exited (${JSON.stringify(this.#exit)}) before ${re}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The origin's base URL of `channel`, from the `live:` line. */
  async channelUrl(channel: string, timeoutMs = 60_000): Promise<string> {
    const m = await this.waitFor(
      new RegExp(`^live: (http://\\S+/channels/${channel})/live/master\\.m3u8$`, 'm'),
      timeoutMs,
    );
    return m[1]!;
  }

  /** SIGKILL to the process (its group when detached); for clean-up. */
  kill(): void {
    if (!this.running) return;
    try {
      if (this.#group) process.kill(-this.pid, 'SIGKILL');
      else this.child.kill('SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
}

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
}

/** /proc/<pid>/stat, parsed (undefined when there is no such process). */
export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).split(' ');
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: f[0]!,
    ppid: Number(f[1]),
    pgid: Number(f[2]),
    sid: Number(f[3]),
  };
}

/** Every process below `pid` (children, their children…). */
export function descendants(pid: number): ProcStat[] {
  const all: ProcStat[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) all.push(s);
  }
  const out: ProcStat[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const s of all)
      if (s.ppid === p) {
        out.push(s);
        queue.push(s.pid);
      }
  }
  return out;
}

/** The source's encoder: the ffmpeg below `pid`. */
export async function findEncoder(pid: number, timeoutMs = 30_000): Promise<ProcStat> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ffmpeg = descendants(pid).find((s) => s.comm === 'ffmpeg');
    if (ffmpeg) return ffmpeg;
    if (Date.now() > deadline) throw new Error(`no ffmpeg below pid ${pid}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** No such process any more (a zombie waiting for its reaper counts as gone: it runs no code). */
export function isGone(pid: number): boolean {
  const s = readStat(pid);
  return s === undefined || s.state === 'Z' || s.state === 'X';
}

export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!isGone(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}
