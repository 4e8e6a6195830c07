/**
 * `npm run bench:hardening [-- --only tracker-floods,rtmp-memory,origin-descriptors,tracker-restart]
 *   [--seconds 15] [--restarts 10] [--viewers 5] [--baseline GIT-REF]`
 *
 * Figures for the hardening issue, each next to its baseline measured in the same run:
 * - tracker-floods: an honest client's join + report latency (p50/p95/max, failures) with no attack,
 *   then during each flood (test/bench/lib/tracker-flood.ts: unknown events, registrations from 100
 *   addresses with a directory watcher, rendition flips by 100 peers), against a real `peertv tracker`.
 * - rtmp-memory: the RTMP ingest's RSS under 40 keyless connections flooding partial messages
 *   (test/bench/rtmp-flood.bench.ts).
 * - origin-descriptors: segments lost when 4 200 idle connections hit a source whose descriptor limit
 *   is 4 096 (test/bench/descriptor-attack.bench.ts).
 * - tracker-restart: `kill -9` of a real tracker process, restarted on the same port and data
 *   directory, `--restarts` times, with a real source and `--viewers` `peertv peer` processes: seconds
 *   from the new tracker listening until every viewer is back in its peer list.
 * `--baseline REF` also runs rtmp-memory and origin-descriptors against that commit (checked out with
 * `git archive` into a temporary folder), side by side. Writes results/hardening-<time>/{result.json,
 * report.md,*.svg}; prints a table per probe, then the summary lines last.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { io } from 'socket.io-client';
import { TRACKER_PROTOCOL_VERSION, type ChannelRegistration } from '../../protocol/index.ts';
import { parseFlags, intFlag, UsageError } from '../../cli/args.ts';
import { signedRegistration } from '../helpers/registration.ts';
import { emptyReport } from '../helpers/tracker-clients.ts';
import { procUsage } from './lib/machine.ts';
import { checkFlags, progress, progressDone, quantile, resultsDir } from './lib/stats.ts';
import { barSvg } from '../../sim/index.ts';

const BENCH = 'bench:hardening';
const PROBES = ['tracker-floods', 'rtmp-memory', 'origin-descriptors', 'tracker-restart'] as const;
type Probe = (typeof PROBES)[number];
const FLOODS = ['none', 'unknown-events', 'registrations', 'rendition-flips'] as const;
type Flood = (typeof FLOODS)[number];

const flags = checkFlags(BENCH, () => {
  const { values: v } = parseFlags(process.argv.slice(2), {
    only: { type: 'string' },
    seconds: { type: 'string' },
    restarts: { type: 'string' },
    viewers: { type: 'string' },
    baseline: { type: 'string' },
  });
  const only = (v.only ?? PROBES.join(',')).split(',').map((s) => s.trim());
  for (const p of only)
    if (!(PROBES as readonly string[]).includes(p))
      throw new UsageError(`--only: unknown probe "${p}" (probes: ${PROBES.join(', ')})`);
  if (v.baseline !== undefined && !/^[A-Za-z0-9._/-]{1,100}$/.test(v.baseline))
    throw new UsageError('--baseline: a git commit or ref');
  return {
    only: only as Probe[],
    seconds: intFlag('seconds', v.seconds, 15, 3, 600),
    restarts: intFlag('restarts', v.restarts, 10, 1, 100),
    viewers: intFlag('viewers', v.viewers, 5, 1, 30),
    baseline: v.baseline,
  };
});

const root = path.resolve(import.meta.dirname, '../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function start(args: string[], name: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.stderr!.on('data', (d: Buffer) => {
    if (process.env.DEBUG) process.stderr.write(`[${name}] ${d}`);
  });
  return child;
}

const stop = (child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL') =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });

/** First stdout line matching `re`. */
function line(child: ChildProcess, re: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no line matching ${re}`)), timeoutMs);
    const rl = readline.createInterface({ input: child.stdout! });
    rl.on('line', (l) => {
      const m = re.exec(l);
      if (m) {
        clearTimeout(t);
        rl.close();
        resolve(m);
      }
    });
    child.once('exit', (c) => reject(new Error(`exited (${c}) before ${re}`)));
  });
}

async function startTracker(): Promise<{ child: ChildProcess; url: string; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-hardening-bench-'));
  const child = start(['cli/main.ts', 'tracker', '--port', '0', '--data-dir', dir], 'tracker');
  const [, url] = await line(child, /^tracker: (http:\/\/\S+)/);
  return { child, url: url!, dir };
}

async function put(url: string, reg: ChannelRegistration): Promise<void> {
  const res = await fetch(`${url}/api/channels/${reg.channel}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(reg),
  });
  if (res.status !== 200) throw new Error(`registration refused: ${res.status} ${await res.text()}`);
}

// ---------------------------------------------------------------- honest client

interface Latency {
  samples: number;
  failures: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

/** Every 250 ms a new honest peer connects, joins and reports once; join → report ack, per peer. */
async function honestProbe(url: string, seconds: number, label: string): Promise<Latency> {
  const ms: number[] = [];
  let failures = 0;
  const deadline = Date.now() + seconds * 1000;
  const running: Promise<void>[] = [];
  const one = async () => {
    const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('connect', resolve);
        s.once('connect_error', reject);
      });
      const t0 = performance.now();
      const join = (await s.timeout(10_000).emitWithAck('join', {
        protocolVersion: TRACKER_PROTOCOL_VERSION,
        channel: 'bench',
        kind: 'node',
        mode: 'viewer',
        rendition: '180p',
        uploadKbps: 1000,
        natType: 'unknown',
      })) as { ok: boolean };
      if (!join.ok) throw new Error('join refused');
      const rep = (await s.timeout(10_000).emitWithAck('report', emptyReport())) as { ok: boolean };
      if (!rep.ok) throw new Error('report refused');
      ms.push(performance.now() - t0);
    } catch {
      failures++;
    } finally {
      s.disconnect();
    }
  };
  while (Date.now() < deadline) {
    running.push(one());
    progress(`${label}: ${ms.length} honest joins, ${failures} failed`);
    await sleep(250);
  }
  await Promise.all(running);
  progressDone();
  return {
    samples: ms.length,
    failures,
    p50Ms: quantile(ms, 0.5),
    p95Ms: quantile(ms, 0.95),
    maxMs: ms.length ? Math.max(...ms) : NaN,
  };
}

// ---------------------------------------------------------------- probes

interface FloodResult {
  flood: Flood;
  honest: Latency;
  attack: Record<string, unknown> | null;
  trackerCpuCores: number;
  trackerRssMb: number;
}

async function trackerFloods(seconds: number): Promise<FloodResult[]> {
  const out: FloodResult[] = [];
  for (const flood of FLOODS) {
    const t = await startTracker();
    await put(
      t.url,
      signedRegistration('bench', {
        renditions: [
          { name: '180p', width: 320, height: 180, bandwidthBps: 400_000 },
          { name: '90p', width: 160, height: 90, bandwidthBps: 150_000 },
        ],
      }),
    );
    const attacker =
      flood === 'none'
        ? undefined
        : start(['test/bench/lib/tracker-flood.ts', flood, t.url, String(seconds + 3)], `flood ${flood}`);
    const attackOut = attacker ? line(attacker, /^\{.*\}$/, (seconds + 60) * 1000) : undefined;
    attackOut?.catch(() => {});
    await sleep(attacker ? 3000 : 0); // the attack ramps up first
    const before = procUsage(t.child.pid!);
    const t0 = Date.now();
    const honest = await honestProbe(t.url, seconds, `tracker, flood ${flood}`);
    const after = procUsage(t.child.pid!);
    const attack = attackOut
      ? (JSON.parse((await attackOut.catch(() => ['{}']))[0]) as Record<string, unknown>)
      : null;
    out.push({
      flood,
      honest,
      attack,
      trackerCpuCores: before && after ? (after.cpuMs - before.cpuMs) / (Date.now() - t0) : NaN,
      trackerRssMb: (after?.rssBytes ?? NaN) / 1024 / 1024,
    });
    if (attacker) await stop(attacker);
    await stop(t.child);
    fs.rmSync(t.dir, { recursive: true, force: true });
  }
  return out;
}

/** Runs a bench script as a child (optionally of another checkout) and returns its last JSON line. */
async function jsonOf(script: string, args: string[], label: string): Promise<Record<string, unknown>> {
  const child = start([script, ...args], label);
  let last = '';
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    if (l.startsWith('{')) last = l;
    else progress(`${label}: ${l}`);
  });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  progressDone();
  if (!last) throw new Error(`${label}: no result (exit ${code})`);
  return JSON.parse(last) as Record<string, unknown>;
}

/** A checkout of `ref` (git archive) sharing this one's node_modules. */
function checkout(ref: string): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-baseline-'));
  const tar = spawnSync('git', ['archive', '--format=tar', ref], { cwd: root, maxBuffer: 1 << 30 });
  if (tar.status !== 0) throw new UsageError(`--baseline: git archive ${ref} failed: ${tar.stderr}`);
  spawnSync('tar', ['-x', '-C', out], { input: tar.stdout });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(out, 'node_modules'));
  return out;
}

interface RestartResult {
  viewers: number;
  /** Seconds from the restarted tracker listening until every viewer was in its peer list (null: not within 60 s). */
  backS: (number | null)[];
}

/** A free TCP port on 127.0.0.1 (the restarted tracker must come back on the same one). */
async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function viewersAt(url: string, channel: string): Promise<number> {
  try {
    const res = await fetch(`${url}/api/channels/${channel}`, { signal: AbortSignal.timeout(2000) });
    return res.ok ? ((await res.json()) as { viewers: number }).viewers : -1;
  } catch {
    return -1;
  }
}

async function trackerRestart(restarts: number, viewers: number): Promise<RestartResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-restart-bench-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const trackerArgs = [
    'cli/main.ts',
    'tracker',
    '--port',
    String(port),
    '--data-dir',
    path.join(dir, 'tracker'),
  ];
  let tracker = start(trackerArgs, 'tracker');
  await line(tracker, /^tracker: /);
  const source = start(
    [
      'cli/main.ts',
      'source',
      '--channel',
      'restart',
      '--port',
      '0',
      '--data-dir',
      path.join(dir, 'source'),
      '--tracker',
      url,
      '--ladder',
      '180p:320x180:300:48',
      '--fps',
      '15',
      '--preset',
      'ultrafast',
    ],
    'source',
  );
  await line(source, /^registered with the tracker/, 120_000);
  const peers = Array.from({ length: viewers }, (_, i) =>
    start(
      [
        'cli/main.ts',
        'peer',
        '--tracker',
        url,
        '--channel',
        'restart',
        '--loopback-only',
        '--status-interval',
        '0',
      ],
      `viewer ${i}`,
    ),
  );
  const all = async (deadlineMs: number) => {
    while (Date.now() < deadlineMs) {
      if ((await viewersAt(url, 'restart')) === viewers) return true;
      await sleep(100);
    }
    return false;
  };
  if (!(await all(Date.now() + 120_000))) throw new Error('the viewers never all joined');
  const backS: (number | null)[] = [];
  for (let i = 0; i < restarts; i++) {
    progress(`tracker restart ${i + 1}/${restarts}: kill -9`);
    await stop(tracker, 'SIGKILL');
    tracker = start(trackerArgs, 'tracker');
    await line(tracker, /^tracker: /);
    const t0 = performance.now();
    const ok = await all(Date.now() + 60_000);
    backS.push(ok ? (performance.now() - t0) / 1000 : null);
    progress(
      `tracker restart ${i + 1}/${restarts}: ${ok ? `all back in ${backS.at(-1)!.toFixed(1)} s` : 'NOT all back in 60 s'}`,
    );
    await sleep(3000);
  }
  progressDone();
  for (const p of peers) await stop(p, 'SIGTERM');
  await stop(source, 'SIGINT');
  await stop(tracker);
  fs.rmSync(dir, { recursive: true, force: true });
  return { viewers, backS };
}

// ---------------------------------------------------------------- run

const dir = resultsDir('hardening');
const result: Record<string, unknown> = { at: new Date().toISOString(), seconds: flags.seconds };
const md: string[] = [
  '# Hardening figures',
  '',
  `${new Date().toISOString()}, ${os.cpus().length} cores`,
  '',
];
const summary: string[] = [];
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '—');

if (flags.only.includes('tracker-floods')) {
  const floods = await trackerFloods(flags.seconds);
  result.trackerFloods = floods;
  md.push(
    '## Honest join + report latency during tracker floods',
    '',
    '| flood | honest joins | failed | p50 ms | p95 ms | max ms | tracker CPU (cores) | tracker RSS MB | the attack |',
    '|---|---|---|---|---|---|---|---|---|',
    ...floods.map(
      (f) =>
        `| ${f.flood} | ${f.honest.samples} | ${f.honest.failures} | ${f1(f.honest.p50Ms)} | ${f1(f.honest.p95Ms)} | ${f1(f.honest.maxMs)} | ${f.trackerCpuCores.toFixed(2)} | ${f.trackerRssMb.toFixed(0)} | ${f.attack ? JSON.stringify(f.attack).replace(/\|/g, '/') : '—'} |`,
    ),
    '',
    '![join + report latency](tracker-floods.svg)',
    '',
  );
  fs.writeFileSync(
    path.join(dir, 'tracker-floods.svg'),
    barSvg({
      title: 'Honest join + report latency, by flood',
      yLabel: 'ms',
      categories: floods.map((f) => f.flood),
      series: [
        { label: 'p50', values: floods.map((f) => f.honest.p50Ms) },
        { label: 'p95', values: floods.map((f) => f.honest.p95Ms) },
      ],
    }),
  );
  const base = floods.find((f) => f.flood === 'none')!;
  summary.push(
    `honest join+report p95: ${f1(base.honest.p95Ms)} ms with no attack; ` +
      floods
        .filter((f) => f.flood !== 'none')
        .map((f) => `${f1(f.honest.p95Ms)} ms during ${f.flood} (${f.honest.failures} failed)`)
        .join(', '),
  );
}

const baselineRoot =
  flags.baseline && (flags.only.includes('rtmp-memory') || flags.only.includes('origin-descriptors'))
    ? checkout(flags.baseline)
    : undefined;
const versions: [string, string][] = [
  ...(baselineRoot ? ([[`baseline ${flags.baseline}`, baselineRoot]] as [string, string][]) : []),
  ['this checkout', root],
];

if (flags.only.includes('rtmp-memory')) {
  const rows: { version: string; r: Record<string, unknown> }[] = [];
  for (const [version, at] of versions)
    rows.push({
      version,
      r: await jsonOf('test/bench/rtmp-flood.bench.ts', ['--root', at], `rtmp memory, ${version}`),
    });
  result.rtmpMemory = rows;
  const mib = (r: Record<string, unknown>, k: string) =>
    ((r.rssMiB as Record<string, number>)[k] ?? NaN).toFixed(0);
  md.push(
    '## RTMP ingest memory under the partial-message flood (40 keyless connections, 15 s)',
    '',
    '| version | connections opened | MiB written | refused | RSS at rest | peak | end of attack | 30 s after |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      ({ version, r }) =>
        `| ${version} | ${r.opened} | ${Number(r.sentMiB).toFixed(0)} | ${r.refused} | ${mib(r, 'rest')} | ${mib(r, 'peak')} | ${mib(r, 'endOfAttack')} | ${mib(r, 'after')} |`,
    ),
    '',
  );
  summary.push(
    `RTMP ingest RSS under the partial-message flood: ${rows.map(({ version, r }) => `${version} peak ${mib(r, 'peak')} MiB, ${mib(r, 'after')} MiB after`).join('; ')}`,
  );
}

if (flags.only.includes('origin-descriptors')) {
  const rows: { version: string; r: Record<string, unknown> }[] = [];
  for (const [version, at] of versions)
    rows.push({
      version,
      r: await jsonOf(
        'test/bench/descriptor-attack.bench.ts',
        ['--root', at, '--seconds', String(Math.max(30, flags.seconds))],
        `descriptors, ${version}`,
      ),
    });
  result.originDescriptors = rows;
  md.push(
    '## Origin: 4 200 idle connections against a descriptor limit of 4 096',
    '',
    '| version | segments lost | publish-failed | viewer playlist requests answered / failed |',
    '|---|---|---|---|',
    ...rows.map(({ version, r }) => {
      const v = r.viewer as { answered: number; failed: number };
      return `| ${version} | ${r.segmentsLost} | ${r.publishFailed} | ${v.answered} / ${v.failed} |`;
    }),
    '',
  );
  summary.push(
    `segments lost under the descriptor attack: ${rows.map(({ version, r }) => `${version} ${r.segmentsLost}`).join('; ')}`,
  );
}

if (flags.only.includes('tracker-restart')) {
  const r = await trackerRestart(flags.restarts, flags.viewers);
  result.trackerRestart = r;
  const ok = r.backS.filter((x): x is number => x !== null);
  const within10 = ok.filter((x) => x <= 10).length;
  md.push(
    `## Viewers back after kill -9 of the tracker (${r.viewers} viewers, ${r.backS.length} restarts)`,
    '',
    '| restart | seconds until every viewer is back |',
    '|---|---|',
    ...r.backS.map((x, i) => `| ${i + 1} | ${x === null ? 'not within 60 s' : x.toFixed(1)} |`),
    '',
    '![rejoin](tracker-restart.svg)',
    '',
  );
  fs.writeFileSync(
    path.join(dir, 'tracker-restart.svg'),
    barSvg({
      title: 'Seconds until every viewer is back after a tracker restart',
      yLabel: 's',
      categories: r.backS.map((_, i) => String(i + 1)),
      series: [{ label: 'all viewers back', values: r.backS.map((x) => x ?? NaN) }],
    }),
  );
  summary.push(
    `tracker restarts: every viewer back within 10 s in ${within10} of ${r.backS.length} (median ${quantile(ok, 0.5).toFixed(1)} s, max ${ok.length ? Math.max(...ok).toFixed(1) : '—'} s)`,
  );
}
if (baselineRoot) fs.rmSync(baselineRoot, { recursive: true, force: true });

fs.writeFileSync(path.join(dir, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
fs.writeFileSync(path.join(dir, 'report.md'), `${md.join('\n')}\n`);
console.log(md.join('\n'));
console.log(`report: ${path.relative(root, dir)}/report.md`);
for (const s of summary) console.log(s);
process.exit(0);
