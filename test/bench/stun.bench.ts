/**
 * `npm run bench:stun [-- --duration 10 --warmup 2 --window 128 --sockets 4 --clients 1 --only ours|coturn]`
 *
 * Binding requests per second that ONE STUN server process answers on 127.0.0.1: ours (`peertv stun`,
 * stun/server.ts) and coturn as a STUN-only server (`turnserver --stun-only`), one after the other in the
 * same run, under the same load generator (test/bench/lib/stun-load.ts: Node dgram sockets in separate
 * process(es), a sliding window of RFC 8489 Binding requests, every response validated).
 * For each server: answered/s, losses, invalid responses, latency p50/p95/p99/max under load, the
 * server's CPU time over the measured window (/proc/PID/stat, and per thread) → requests per
 * CPU-second, the load generator's CPU and the machine's; then one second with a single request in
 * flight (latency at idle). Both servers are started here as child processes on free ports and killed
 * by pid when done, on error and on Ctrl-C. Without turnserver, coturn is skipped (and said why).
 * Writes results/stun-<time>/{result.json,report.md,*.svg} (or --out DIR); prints the table, then a
 * summary line last.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  encodeStunMessage,
  findAttribute,
  parseStunMessage,
  randomTransactionId,
  STUN_ATTR,
  STUN_METHOD,
} from '../../stun/index.ts';
import { coresBusy, cpuSnapshot, statCpuMs, type CpuSnapshot } from './lib/machine.ts';
import { killAllChildren, RpcChild, type RpcEvent } from './lib/rpc.ts';
import {
  latencyFromHistograms,
  type LatencySummary,
  type StunLoadCommands,
  type StunLoadOptions,
  type StunLoadResult,
  type StunLoadTick,
} from './lib/stun-load.ts';
import { parseFlags } from '../../cli/args.ts';
import { benchUsage, checkFlags, progress, progressDone, resultsDir } from './lib/stats.ts';
import { histogramSvg, lineSvg, type Series } from '../../sim/index.ts';

// ---------------------------------------------------------------- flags

const USAGE = `Usage: npm run bench:stun [-- options]

Binding requests per second answered by one STUN server process on 127.0.0.1: ours and coturn.

Options:
  --duration S        measured seconds per server (default: 10)
  --warmup S          uncounted load before that (default: 2)
  --window N          requests in flight over all sockets (default: 128)
  --sockets N         client UDP sockets (default: 4)
  --clients N         load generator processes sharing window and sockets (default: 1)
  --only ours|coturn  measure one server
  --coturn-threads N  coturn's --relay-threads (default: 0 = single-threaded)
  --turnserver PATH   coturn's binary (default: turnserver on PATH)
  --out DIR           where report.md and result.json go (default: results/stun-<time>/)
  -h, --help          show this help
`;

/** A bad flag: one line on stderr, exit status 2. */
const usageError = (message: string): never => benchUsage('bench:stun', `${message} (see --help)`);

function parseBenchFlags() {
  return checkFlags(
    'bench:stun',
    () =>
      parseFlags(process.argv.slice(2), {
        duration: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '2' },
        window: { type: 'string', default: '128' },
        sockets: { type: 'string', default: '4' },
        clients: { type: 'string', default: '1' },
        only: { type: 'string' },
        'coturn-threads': { type: 'string', default: '0' },
        turnserver: { type: 'string' },
        out: { type: 'string' },
      }).values,
  );
}
const flags = parseBenchFlags();
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const num = (name: string, v: string, min: number, max: number, integer: boolean): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max)
    usageError(
      `--${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max} (got "${v}")`,
    );
  return n;
};
const durationS = num('duration', flags.duration, 0.5, 600, false);
const warmupS = num('warmup', flags.warmup, 0, 60, false);
const windowSize = num('window', flags.window, 1, 65_536, true);
const sockets = num('sockets', flags.sockets, 1, 1024, true);
const clients = num('clients', flags.clients, 1, 16, true);
const coturnThreads = num('coturn-threads', flags['coturn-threads'], 0, 64, true);
if (sockets < clients) usageError(`--sockets (${sockets}) must be at least --clients (${clients})`);
if (windowSize < sockets) usageError(`--window (${windowSize}) must be at least --sockets (${sockets})`);
const SERVERS = ['ours', 'coturn'] as const;
type ServerName = (typeof SERVERS)[number];
if (flags.only !== undefined && !SERVERS.includes(flags.only as ServerName))
  usageError(`--only must be ours or coturn (got "${flags.only}")`);
const only = flags.only as ServerName | undefined;

const root = path.resolve(import.meta.dirname, '../..');
const out = flags.out ? path.resolve(flags.out) : resultsDir('stun');
fs.mkdirSync(out, { recursive: true });
const HOST = '127.0.0.1';
/** A request unanswered this long is lost. */
const TIMEOUT_MS = 1000;
/** The idle-latency pass: one request in flight. */
const IDLE = { warmupS: 0.3, durationS: 1 };

// ---------------------------------------------------------------- processes we start

/** Servers started by this bench (pid → process): killed by pid when done, on error and on exit. */
const started = new Map<number, ChildProcess>();
/** coturn's pid file and SQLite file live here; removed at the end. */
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-stun-bench-'));
function killStarted(): void {
  for (const [pid, proc] of started)
    if (proc.exitCode === null && proc.signalCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
}
process.on('exit', () => {
  killStarted();
  killAllChildren();
  fs.rmSync(tmp, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    progressDone();
    process.stderr.write(`\n${signal}: stopping the processes this bench started\n`);
    killStarted();
    killAllChildren();
    process.exit(130);
  });

interface Running {
  name: ServerName;
  pid: number;
  port: number;
  command: string[];
  /** Last lines of the server's output (for error messages and coturn's log). */
  log: () => string;
  stop: () => Promise<void>;
}

function spawnTracked(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
  const proc = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env });
  const lines: string[] = [];
  const keep = (d: Buffer) => {
    lines.push(...d.toString().split('\n').filter(Boolean));
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<string>((resolve) => {
    proc.once('exit', (code, signal) => resolve(signal ?? `code ${code}`));
    proc.once('error', (err) => resolve(err.message));
  });
  if (proc.pid !== undefined) started.set(proc.pid, proc);
  const stop = async (signal: NodeJS.Signals) => {
    if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    try {
      process.kill(proc.pid, signal);
    } catch {
      return;
    }
    const t = setTimeout(() => {
      try {
        process.kill(proc.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 3000);
    await exited;
    clearTimeout(t);
  };
  return { proc, lines, exited, stop };
}

/** Sends Binding requests until one is answered correctly (the server is up); the response's shape. */
async function probe(port: number, exited: Promise<string>, timeoutMs: number) {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, HOST, () => r()));
  const me = sock.address();
  let done = false;
  try {
    return await new Promise<{ bytes: number; attributes: string[] }>((resolve, reject) => {
      const names = new Map(Object.entries(STUN_ATTR).map(([k, v]) => [v as number, k.replace(/_/g, '-')]));
      sock.on('message', (msg) => {
        const p = parseStunMessage(msg);
        if (!p.ok || p.message.class !== 'success') return;
        const xma = findAttribute(p.message, STUN_ATTR.XOR_MAPPED_ADDRESS, 'address');
        if (xma?.address.address !== me.address || xma.address.port !== me.port) return;
        const attributes = p.message.attributes.map((a) => names.get(a.type) ?? `0x${a.type.toString(16)}`);
        if (p.message.fingerprint !== undefined) attributes.push('FINGERPRINT');
        resolve({ bytes: msg.length, attributes });
      });
      sock.on('error', () => {
        /* ECONNREFUSED before the server binds: keep probing */
      });
      const send = () => {
        if (done) return;
        const req = encodeStunMessage({
          class: 'request',
          method: STUN_METHOD.binding,
          transactionId: randomTransactionId(),
          attributes: [],
        });
        sock.send(req, port, HOST);
        setTimeout(send, 100);
      };
      send();
      setTimeout(
        () => reject(new Error(`no Binding response on ${HOST}:${port} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      void exited.then((how) => reject(new Error(`the server exited (${how}) before answering`)));
    });
  } finally {
    done = true;
    sock.close();
  }
}

const tail = (lines: string[], n = 15) => lines.slice(-n).join('\n');

async function startOurs(): Promise<Running & { response: Awaited<ReturnType<typeof probe>> }> {
  const args = [
    '--import',
    'tsx',
    'cli/main.ts',
    'stun',
    '--host',
    HOST,
    '--port',
    '0',
    '--no-tcp',
    '--rate',
    '0',
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_NO_WARNINGS: '1' };
  delete env.DEBUG; // quiet, as in production
  const s = spawnTracked(process.execPath, args, env);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`peertv stun did not start:\n${tail(s.lines)}`)), 30_000);
    const look = () => {
      const m = /stun: udp (\d+)/.exec(s.lines.join('\n'));
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    s.proc.stdout!.on('data', look);
    void s.exited.then((how) => reject(new Error(`peertv stun exited (${how}):\n${tail(s.lines)}`)));
  });
  const response = await probe(port, s.exited, 10_000);
  return {
    name: 'ours',
    pid: s.proc.pid!,
    port,
    command: ['node', ...args],
    log: () => tail(s.lines),
    stop: () => s.stop('SIGINT'),
    response,
  };
}

/** `turnserver` on PATH (or --turnserver), or why not. */
function findTurnserver(): { path: string } | { missing: string } {
  if (flags.turnserver) {
    try {
      fs.accessSync(flags.turnserver, fs.constants.X_OK);
      return { path: flags.turnserver };
    } catch {
      return { missing: `${flags.turnserver} is not an executable file` };
    }
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const p = path.join(dir, 'turnserver');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return { path: p };
    } catch {
      /* next */
    }
  }
  return {
    missing:
      'turnserver is not installed (Debian package coturn; `npm run bench:stun` installs it through' +
      ' scripts/ensure-deps.sh --natlab when run as root)',
  };
}

const freeUdpPort = () =>
  new Promise<number>((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function startCoturn(
  bin: string,
  tmp: string,
): Promise<Running & { response: Awaited<ReturnType<typeof probe>> }> {
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freeUdpPort();
    const args = [
      '-n', // no configuration file: everything is on this command line
      '--stun-only',
      `--listening-ip=${HOST}`,
      `--relay-ip=${HOST}`, // never look at other interfaces (no relaying happens with --stun-only)
      `--listening-port=${port}`,
      '--no-tcp', // UDP only, as ours with --no-tcp
      '--no-tls',
      '--no-dtls',
      '--no-cli',
      '--no-rfc5780', // ours runs without an alternate address too
      '--fingerprint', // FINGERPRINT in responses, as ours
      '--no-stun-backward-compatibility', // no MAPPED-ADDRESS (ours sends XOR-MAPPED-ADDRESS only)
      '--response-origin-only-with-rfc5780', // no RESPONSE-ORIGIN either
      `--relay-threads=${coturnThreads}`, // 0: single-threaded, like one Node event loop
      '--log-file=stdout',
      '--simple-log',
      `--pidfile=${path.join(tmp, 'turnserver.pid')}`,
      `--db=${path.join(tmp, 'turndb')}`, // its own SQLite file, not /var/lib/turn/turndb
    ];
    const s = spawnTracked(bin, args, process.env);
    try {
      const response = await probe(port, s.exited, 10_000);
      return {
        name: 'coturn',
        pid: s.proc.pid!,
        port,
        command: [bin, ...args],
        log: () => s.lines.join('\n'),
        stop: () => s.stop('SIGTERM'),
        response,
      };
    } catch (err) {
      await s.stop('SIGKILL');
      lastError = new Error(`turnserver on port ${port}: ${(err as Error).message}\n${tail(s.lines)}`);
    }
  }
  throw lastError!;
}

// ---------------------------------------------------------------- CPU accounting (/proc)

/** utime + stime of a /proc stat file, in seconds. */
const statCpuS = (file: string): number | undefined => {
  const ms = statCpuMs(file);
  return ms === undefined ? undefined : ms / 1000;
};

interface ProcSample {
  atMs: number;
  cpuS: number;
  /** Thread id → [name, CPU seconds]. */
  threads: Map<number, [string, number]>;
}
function sampleProc(pid: number): ProcSample {
  const threads = new Map<number, [string, number]>();
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const cpu = statCpuS(`/proc/${pid}/task/${tid}/stat`);
      let comm = '';
      try {
        comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      } catch {
        /* thread gone */
      }
      if (cpu !== undefined) threads.set(Number(tid), [comm, cpu]);
    }
  } catch {
    /* not Linux, or gone */
  }
  return { atMs: performance.now(), cpuS: statCpuS(`/proc/${pid}/stat`) ?? NaN, threads };
}

/** Datagrams the kernel dropped on the server's UDP socket(s) (/proc/net/udp `drops`, all sockets bound to `port`). */
function socketDrops(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    return fs
      .readFileSync('/proc/net/udp', 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(hex))
      .reduce((n, f) => n + Number(f.at(-1)), 0);
  } catch {
    return NaN;
  }
}
/** SO_RCVBUF of the server's UDP socket(s) in bytes (`ss -uam`, iproute2), NaN when unknown. */
function socketRcvbuf(port: number): number {
  const r = spawnSync('ss', ['-uamnH', `sport = :${port}`], { encoding: 'utf8' });
  const sizes = [...(r.stdout ?? '').matchAll(/\brb(\d+)/g)].map((m) => Number(m[1]));
  return sizes.length ? Math.max(...sizes) : NaN;
}
/** Machine-wide UDP receive-buffer overflows (/proc/net/snmp `Udp: RcvbufErrors`). */
function rcvbufErrors(): number {
  try {
    const [names, values] = fs
      .readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp: '))
      .map((l) => l.split(/\s+/));
    return Number(values?.[names?.indexOf('RcvbufErrors') ?? -1]);
  } catch {
    return NaN;
  }
}

interface ThreadUse {
  name: string;
  cpuPct: number;
}
function threadUse(a: ProcSample, b: ProcSample): ThreadUse[] {
  const wallS = (b.atMs - a.atMs) / 1000;
  return [...b.threads]
    .map(([tid, [name, cpu]]) => ({ name, cpuPct: ((cpu - (a.threads.get(tid)?.[1] ?? 0)) / wallS) * 100 }))
    .sort((x, y) => y.cpuPct - x.cpuPct);
}

// ---------------------------------------------------------------- one server

interface Measured extends Pick<
  StunLoadResult,
  | 'measuredS'
  | 'sent'
  | 'answered'
  | 'answeredPerS'
  | 'lost'
  | 'late'
  | 'invalid'
  | 'socketErrors'
  | 'latencyMs'
> {
  name: ServerName;
  command: string;
  pid: number;
  port: number;
  response: { bytes: number; attributes: string[] };
  version?: string;
  coturnThreadsFlag?: number;
  idleLatencyMs: LatencySummary;
  server: {
    cpuS: number;
    /** % of one core over the measured window. */
    cpuPct: number;
    requestsPerCpuS: number;
    threads: number;
    /** Receive buffer of its UDP socket (bytes). */
    rcvbufBytes: number;
    /** Threads that used ≥ 1 % of a core during the window. */
    busyThreads: ThreadUse[];
  };
  loadGenerator: { processes: number; cpuPct: number; perProcessCpuPct: number[] };
  /** Datagrams dropped by the kernel during the window: on the server's socket(s), and all UDP receive-buffer overflows. */
  kernelDrops: { serverSocket: number; allUdpRcvbuf: number };
  /** Cores busy machine-wide during the window, and how many of them other processes used. */
  machine: { coresBusy: number; cores: number; otherCoresBusy: number };
  boundBy: string;
  /** Per second: [s since the window opened, answered/s (all load processes)] and [s, server CPU %]. */
  perSecond: [number, number][];
  serverCpuPerSecond: [number, number][];
  latencySampleMs: number[];
}

interface Skipped {
  name: ServerName;
  skipped: string;
}

async function measure(
  server: Running & { response: Measured['response'] },
  version?: string,
): Promise<Measured> {
  const label = server.name;
  const loaders: RpcChild<StunLoadCommands>[] = [];
  try {
    for (let i = 0; i < clients; i++) {
      const c = new RpcChild<StunLoadCommands>(`stun-load-${i}`, 'test/bench/lib/stun-load.ts', {
        root,
        nofile: 4096,
      });
      loaders.push(c);
    }
    await Promise.all(loaders.map((c) => c.waitEvent('ready', 30_000)));
    const startAtEpochMs = Date.now() + 200;
    const split = (total: number, i: number) => Math.floor(total / clients) + (i < total % clients ? 1 : 0);

    // CPU samples: when the first load process opens the window and the last closes it, and every tick.
    let opened = 0;
    let closed = 0;
    type Sample = {
      proc: ProcSample;
      machine: CpuSnapshot;
      drops: number;
      rcvbuf: number;
      self: NodeJS.CpuUsage;
    };
    const sample = (): Sample => ({
      self: process.cpuUsage(),
      proc: sampleProc(server.pid),
      machine: cpuSnapshot(),
      drops: socketDrops(server.port),
      rcvbuf: rcvbufErrors(),
    });
    let from: Sample | undefined;
    let to: Sample | undefined;
    const ticks = new Map<number, number>(); // tick index → answered/s summed over load processes
    const serverCpuPerSecond: [number, number][] = [];
    let lastCpu = sampleProc(server.pid);
    const latest = new Array<number>(clients).fill(0);
    const offs = loaders.map((c, i) =>
      c.onEvent((e: RpcEvent) => {
        if (e.event === 'phase') {
          if (e.phase === 'measure' && opened++ === 0) from = sample();
          if (e.phase === 'drain' && ++closed === clients) to = sample();
        } else if (e.event === 'tick') {
          const t = e as unknown as StunLoadTick & RpcEvent;
          latest[i] = t.answeredPerS;
          if (i === 0) {
            const now = sampleProc(server.pid);
            const pct = ((now.cpuS - lastCpu.cpuS) / ((now.atMs - lastCpu.atMs) / 1000)) * 100;
            serverCpuPerSecond.push([Math.round(t.atS * 100) / 100, Math.round(pct)]);
            lastCpu = now;
            const rate = latest.reduce((a, b) => a + b, 0);
            progress(
              `${label}: ${t.phase === 'warmup' ? 'warm-up' : 'measuring'} ${t.atS.toFixed(0)} s,` +
                ` ${Math.round(rate).toLocaleString('en')} answered/s, server CPU ${pct.toFixed(0)} %` +
                (t.lost ? `, ${t.lost} lost` : '') +
                (t.invalid ? `, ${t.invalid} invalid` : ''),
            );
          }
          const key = Math.round(t.atS);
          ticks.set(key, (ticks.get(key) ?? 0) + t.answeredPerS);
        }
      }),
    );
    const results: StunLoadResult[] = await Promise.all(
      loaders.map((c, i) => {
        const args: Partial<StunLoadOptions> = {
          host: HOST,
          port: server.port,
          warmupS,
          durationS,
          window: split(windowSize, i),
          sockets: split(sockets, i),
          timeoutMs: TIMEOUT_MS,
          latencySample: Math.ceil(20_000 / clients),
          startAtEpochMs,
        };
        return c.call('run', args, (warmupS + durationS) * 1000 + 60_000);
      }),
    );
    for (const off of offs) off();
    progressDone();
    if (!from || !to) throw new Error(`${label}: the load processes never opened/closed the measured window`);

    progress(`${label}: latency with one request in flight (${IDLE.durationS} s)`);
    const idle = await loaders[0]!.call('run', {
      host: HOST,
      port: server.port,
      ...IDLE,
      window: 1,
      sockets: 1,
      timeoutMs: TIMEOUT_MS,
      latencySample: 0,
    });
    progressDone();

    const wallS = (to.proc.atMs - from.proc.atMs) / 1000;
    const cpuS = to.proc.cpuS - from.proc.cpuS;
    const answered = results.reduce((n, r) => n + r.answered, 0);
    const answeredPerS = results.reduce((n, r) => n + r.answeredPerS, 0);
    const sum = <K extends 'sent' | 'lost' | 'late'>(k: K) => results.reduce((n, r) => n + r[k], 0);
    const merge = (list: Record<string, number>[]) => {
      const m: Record<string, number> = {};
      for (const rec of list) for (const [k, v] of Object.entries(rec)) m[k] = (m[k] ?? 0) + v;
      return m;
    };
    const busyThreads = threadUse(from.proc, to.proc).filter((t) => t.cpuPct >= 1);
    const cpuPct = (cpuS / wallS) * 100;
    const perProcessCpuPct = results.map((r) => r.clientCpuPct);
    const cores = os.cpus().length;
    const machineBusy = coresBusy(from.machine, to.machine);
    const selfCores = (to.self.user + to.self.system - from.self.user - from.self.system) / 1e6 / wallS;
    /** Cores kept busy by anything but the server, the load generator(s) and this bench (other processes, the hypervisor's steal time). */
    const otherCores = Math.max(
      0,
      machineBusy - cpuPct / 100 - perProcessCpuPct.reduce((a, b) => a + b, 0) / 100 - selfCores,
    );
    const busiest = busyThreads[0]?.cpuPct ?? 0;
    const drops = { serverSocket: to.drops - from.drops, allUdpRcvbuf: to.rcvbuf - from.rcvbuf };
    const boundBy =
      busiest >= 90
        ? `the server (its busiest thread, ${busyThreads[0]!.name}, used ${busiest.toFixed(0)} % of a core)`
        : perProcessCpuPct.some((p) => p >= 90)
          ? `the load generator (${perProcessCpuPct.map((p) => p.toFixed(0)).join(' + ')} % of a core)`
          : drops.serverSocket > 0 || drops.allUdpRcvbuf > 0
            ? `lost requests: the kernel dropped ${drops.serverSocket} requests on the server's full socket buffer,` +
              ` each held a slot of the window for ${TIMEOUT_MS} ms`
            : machineBusy >= cores * 0.9
              ? `the machine (${machineBusy.toFixed(2)} of ${cores} cores busy, ${otherCores.toFixed(2)} of them by others)`
              : 'neither process is saturated: a larger --window may give more';
    return {
      name: server.name,
      command: server.command.join(' '),
      pid: server.pid,
      port: server.port,
      response: server.response,
      ...(version !== undefined && { version }),
      ...(server.name === 'coturn' && { coturnThreadsFlag: coturnThreads }),
      measuredS: results[0]!.measuredS,
      sent: sum('sent'),
      answered,
      answeredPerS,
      lost: sum('lost'),
      late: sum('late'),
      invalid: merge(results.map((r) => r.invalid)),
      socketErrors: merge(results.map((r) => r.socketErrors)),
      latencyMs: latencyFromHistograms(
        results.map((r) => ({ histogram: r.latencyHistogram, max: r.latencyMs.max, sum: r.latencySumMs })),
      ),
      idleLatencyMs: idle.latencyMs,
      server: {
        cpuS,
        cpuPct,
        requestsPerCpuS: cpuS > 0 ? (answeredPerS * wallS) / cpuS : NaN,
        threads: to.proc.threads.size,
        rcvbufBytes: socketRcvbuf(server.port),
        busyThreads,
      },
      loadGenerator: {
        processes: clients,
        cpuPct: perProcessCpuPct.reduce((a, b) => a + b, 0),
        perProcessCpuPct,
      },
      kernelDrops: drops,
      machine: { coresBusy: machineBusy, cores, otherCoresBusy: otherCores },
      boundBy,
      perSecond: [...ticks].sort((a, b) => a[0] - b[0]).map(([s, r]) => [s, Math.round(r)]),
      serverCpuPerSecond,
      latencySampleMs: results.flatMap((r) => r.latencySampleMs).sort((a, b) => a - b),
    };
  } finally {
    await Promise.all(loaders.map((c) => c.stop(5000)));
  }
}

// ---------------------------------------------------------------- main

/** Other processes busier than this during a window make its figures suspect: said so. */
const OTHERS_WARN_CORES = 0.2;
const othersWarning = (m: Measured) =>
  `warning: other processes (or the hypervisor's steal time) kept ${m.machine.otherCoresBusy.toFixed(2)} of ${m.machine.cores} cores busy` +
  ` during ${m.name}'s window: its figures are disturbed; run again on a quiet machine`;
const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toString() : '-');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');
const thousands = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en') : '-');

async function main(): Promise<number> {
  const runs: (Measured | Skipped)[] = [];
  let failed = false;
  const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(
    `bench:stun: ${warmupS} s warm-up + ${durationS} s per server, window ${windowSize}, ${sockets} sockets,` +
      ` ${clients} load process${clients > 1 ? 'es' : ''}; ${os.cpus().length} cores (${cpuModel}), Node ${process.version}`,
  );
  try {
    for (const name of SERVERS) {
      if (only && only !== name) {
        runs.push({ name, skipped: `--only ${only}` });
        continue;
      }
      let server: (Running & { response: Measured['response'] }) | undefined;
      let version: string | undefined;
      try {
        progress(`${name}: starting`);
        if (name === 'ours') server = await startOurs();
        else {
          const found = findTurnserver();
          if ('missing' in found) {
            progressDone();
            console.log(`coturn: skipped: ${found.missing}`);
            runs.push({ name, skipped: found.missing });
            continue;
          }
          version = spawnSync(found.path, ['--version'], { encoding: 'utf8' })
            .stdout?.trim()
            .split('\n')
            .at(-1);
          server = await startCoturn(found.path, tmp);
        }
        progressDone();
        console.log(
          `${name}: pid ${server.pid} on udp ${HOST}:${server.port}; response ${server.response.bytes} bytes` +
            ` (${server.response.attributes.join(', ')})`,
        );
        const m = await measure(server, version);
        runs.push(m);
        console.log(
          `${name}: ${thousands(m.answeredPerS)} answered/s, p50/p95/p99 ${f2(m.latencyMs.p50)}/${f2(m.latencyMs.p95)}/` +
            `${f2(m.latencyMs.p99)} ms, server CPU ${f0(m.server.cpuPct)} % → ${thousands(m.server.requestsPerCpuS)}` +
            ` requests per CPU-second; bound by ${m.boundBy}`,
        );
        if (m.machine.otherCoresBusy >= OTHERS_WARN_CORES) console.log(othersWarning(m));
        if (name === 'coturn') fs.writeFileSync(path.join(out, 'coturn.log'), `${server.log()}\n`);
      } catch (err) {
        progressDone();
        failed = true;
        const why = (err as Error).message;
        console.error(`${name}: failed: ${why}`);
        runs.push({ name, skipped: `failed: ${why.split('\n')[0]}` });
      } finally {
        await server?.stop();
      }
    }
  } finally {
    killStarted();
  }
  writeReport(runs);
  const get = (name: ServerName) => runs.find((r): r is Measured => r.name === name && !('skipped' in r));
  const ours = get('ours');
  const coturn = get('coturn');
  console.log(`report: ${path.relative(process.cwd(), path.join(out, 'report.md'))}`);
  console.log(
    [
      `ours_rps=${f0(ours?.answeredPerS ?? NaN)}`,
      `coturn_rps=${f0(coturn?.answeredPerS ?? NaN)}`,
      `ours_p99_ms=${f2(ours?.latencyMs.p99 ?? NaN)}`,
      `coturn_p99_ms=${f2(coturn?.latencyMs.p99 ?? NaN)}`,
      `ours_cpu_pct=${f0(ours?.server.cpuPct ?? NaN)}`,
      `coturn_cpu_pct=${f0(coturn?.server.cpuPct ?? NaN)}`,
      `ours_req_per_cpu_s=${f0(ours?.server.requestsPerCpuS ?? NaN)}`,
      `coturn_req_per_cpu_s=${f0(coturn?.server.requestsPerCpuS ?? NaN)}`,
    ].join(' '),
  );
  return failed ? 1 : 0;
}

function writeReport(runs: (Measured | Skipped)[]): void {
  const measured = runs.filter((r): r is Measured => !('skipped' in r));
  const skipped = runs.filter((r): r is Skipped => 'skipped' in r);
  const cores = os.cpus().length;
  const result = {
    date: new Date().toISOString(),
    machine: {
      cores,
      cpu: os.cpus()[0]?.model,
      kernel: os.release(),
      node: process.version,
      loadAvg1: os.loadavg()[0],
    },
    options: {
      durationS,
      warmupS,
      window: windowSize,
      sockets,
      clients,
      coturnThreads,
      timeoutMs: TIMEOUT_MS,
      idle: IDLE,
    },
    servers: Object.fromEntries(runs.map((r) => [r.name, r])),
  };
  fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify(result, null, 2));

  const colors: Record<ServerName, string> = { ours: '#2563eb', coturn: '#dc2626' };
  if (measured.length) {
    fs.writeFileSync(
      path.join(out, 'answered-per-second.svg'),
      lineSvg({
        title: 'Binding requests answered per second (warm-up at t < 0)',
        xLabel: 's since the measured window opened',
        yLabel: 'answered / s',
        series: measured.map((m): Series => ({ label: m.name, points: m.perSecond, color: colors[m.name] })),
      }),
    );
    fs.writeFileSync(
      path.join(out, 'server-cpu.svg'),
      lineSvg({
        title: 'Server process CPU (% of one core)',
        xLabel: 's since the measured window opened',
        yLabel: '%',
        series: measured.map((m): Series => ({
          label: m.name,
          points: m.serverCpuPerSecond,
          color: colors[m.name],
        })),
      }),
    );
    for (const m of measured) {
      const cut = m.latencyMs.p999;
      fs.writeFileSync(
        path.join(out, `latency-${m.name}.svg`),
        histogramSvg({
          title: `${m.name}: latency under load, window ${windowSize} (sampled, up to p99.9 = ${f2(cut)} ms)`,
          xLabel: 'ms',
          values: m.latencySampleMs.filter((v) => v <= cut),
          bins: 40,
        }),
      );
    }
  }

  const row = (m: Measured) =>
    `| ${m.name} | **${thousands(m.answeredPerS)}** | ${f2(m.latencyMs.p50)} / ${f2(m.latencyMs.p95)} / ${f2(m.latencyMs.p99)} / ${f1(m.latencyMs.max)} | ` +
    `${f3(m.idleLatencyMs.p50)} / ${f3(m.idleLatencyMs.p99)} | ${m.lost} | ${Object.values(m.invalid).reduce((a, b) => a + b, 0)} | ${f0(m.kernelDrops.serverSocket)} / ${f0(m.kernelDrops.allUdpRcvbuf)} | ` +
    `${f0(m.server.cpuPct)} % | **${thousands(m.server.requestsPerCpuS)}** | ${m.server.threads} (${m.server.busyThreads.length} busy) | ` +
    `${f0(m.loadGenerator.cpuPct)} % | ${f2(m.machine.coresBusy)} / ${m.machine.cores} (others ${f2(m.machine.otherCoresBusy)}) |`;
  const table = [
    '| server | answered/s | latency under load p50 / p95 / p99 / max (ms) | idle latency p50 / p99 (ms) | lost | invalid | kernel drops: server socket / all UDP | server CPU (of one core) | requests per CPU-second | server threads | load generator CPU | machine cores busy (by others) |',
    '|---|--:|---|---|--:|--:|---|--:|--:|---|--:|--:|',
    ...measured.map(row),
  ].join('\n');
  console.log(`\n${table}\n`);
  for (const s of skipped) console.log(`${s.name}: ${s.skipped}`);

  const ratio = (a?: Measured, b?: Measured) =>
    a && b
      ? `ours answered ${f2(a.answeredPerS / b.answeredPerS)}× coturn's rate and ${f2(a.server.requestsPerCpuS / b.server.requestsPerCpuS)}× its requests per CPU-second.`
      : '';
  const ours = measured.find((m) => m.name === 'ours');
  const coturn = measured.find((m) => m.name === 'coturn');
  const threadLines = measured
    .map(
      (m) =>
        `- ${m.name}: ${m.server.threads} threads; during the window ${m.server.busyThreads.map((t) => `${t.name} ${f0(t.cpuPct)} %`).join(', ') || 'none above 1 %'} of a core.`,
    )
    .join('\n');
  fs.writeFileSync(
    path.join(out, 'report.md'),
    `# STUN benchmark (${result.date})

One STUN server process at a time on ${HOST} (UDP only), answering RFC 8489 Binding requests from the
same load generator: ${clients} Node process${clients > 1 ? 'es' : ''} (test/bench/lib/stun-load.ts),
${sockets} connected UDP socket${sockets > 1 ? 's' : ''}, a sliding window of **${windowSize} requests in
flight**, ${warmupS} s warm-up then **${durationS} s measured** per server; a request unanswered within
${TIMEOUT_MS} ms is lost. Every response is validated (Binding success, XOR-MAPPED-ADDRESS equal to the
sending socket's address). Machine: ${cores} cores (${result.machine.cpu}), Linux ${result.machine.kernel},
Node ${process.version}${coturn?.version ? `, coturn ${coturn.version}` : ''}.

${table}

${ratio(ours, coturn)}
${skipped.map((s) => `\n**${s.name} skipped**: ${s.skipped}.`).join('\n')}

Bound by (heuristic: a thread or process at ≥ 90 % of a core):
${measured.map((m) => `- ${m.name}: ${m.boundBy}`).join('\n')}
${measured
  .filter((m) => m.machine.otherCoresBusy >= OTHERS_WARN_CORES)
  .map((m) => `\n**${othersWarning(m)}**`)
  .join('\n')}

## How to read it

- **The load generator and the server share the machine's ${cores} cores.** The load generator's
  own CPU is in the table; when it is the one at 100 %, the rate shown is the load generator's ceiling,
  not the server's, and **requests per CPU-second** (answered requests ÷ the server's CPU seconds over the
  window, from /proc/PID/stat, all threads) is the fair comparison. It is still a lower bound for a
  server that is not saturated: a busy server reads more datagrams per wake-up.
- Both servers use one thread for requests: ours is one Node event loop (V8's helper threads are counted
  too); coturn runs with \`--relay-threads=${coturnThreads}\`${coturnThreads === 0 ? ' (single-threaded: one general server thread for all UDP; its auth and admin threads stay idle)' : ` (${coturnThreads} relay threads, UDP spread over them with SO_REUSEPORT by the clients' source ports)`}.
  Threads that used CPU during the window:
${threadLines.replace(/^/gm, '  ')}
- Responses: ${measured.map((m) => `${m.name} ${m.response.bytes} bytes (${m.response.attributes.join(', ')})`).join('; ')}.
  coturn is started with \`--no-stun-backward-compatibility --response-origin-only-with-rfc5780
  --fingerprint --no-rfc5780\` so that both answer with the same attributes; ours runs with
  \`--rate 0\` (no per-source rate limit; every request comes from one address here).
- Kernel drops: datagrams the kernel threw away because the server's socket receive buffer was full
  (SO_RCVBUF: ${measured.map((m) => `${m.name} ${Number.isFinite(m.server.rcvbufBytes) ? `${(m.server.rcvbufBytes / 1024).toFixed(0)} KiB` : 'unknown'}`).join(', ')});
  each one is a lost request (a ${TIMEOUT_MS} ms time-out, then replaced). A small buffer
  overflows when more requests are queued than it holds (each tiny datagram costs about 1 KiB of it).
- Latency under load is mostly queueing: with ${windowSize} requests in flight, mean latency ≈ window ÷
  rate (Little's law). The idle column (one request in flight, ${IDLE.durationS} s) is the loopback
  round trip through each server.

## Commands

${measured.map((m) => `- ${m.name} (pid ${m.pid}): \`${m.command}\``).join('\n')}

\`npm run bench:stun -- --duration S --warmup S --window N --sockets N --clients N --only ours|coturn --coturn-threads N --out DIR\`
changes the run.

${measured.length ? '![answered per second](answered-per-second.svg)\n\n![server CPU](server-cpu.svg)\n\n' : ''}${measured.map((m) => `![latency ${m.name}](latency-${m.name}.svg)`).join('\n\n')}
`,
  );
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    progressDone();
    console.error(`bench:stun: ${err.stack ?? err.message}`);
    killStarted();
    killAllChildren();
    process.exit(1);
  },
);
