/**
 * `npm run bench:tracker [-- --peers 1000,5000,10000 --rate 1000 --relay-seconds 20 --hold-seconds 30]`
 *
 * One tracker process (test/bench/lib/tracker-process.ts) and one client process
 * (test/bench/lib/tracker-clients.ts) holding N socket.io peers, all on 127.0.0.1. For every N:
 * 1. join rate: N clients connect and `join` with bounded concurrency (`--concurrency`); joins acked/s.
 * 2. holding: after `--hold-seconds`, peers still connected and joined on both sides; tracker RSS
 *    (after a GC) before the clients and with all N connected → RSS per connected peer.
 * 3. signaling relay: `--rate` `signal`s/s for `--relay-seconds` between random introduced pairs,
 *    send → receive latency (timestamp in the candidate, one process clock), losses, tracker CPU time.
 * The tracker is restarted between N so every figure is per N. Writes
 * results/tracker-<time>/{result.json,report.md,*.svg}; prints a table, then a summary line last.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { coresBusy, cpuSnapshot } from './lib/machine.ts';
import { ephemeralPorts, fileLimits, killAllChildren, RpcChild, type RpcEvent } from './lib/rpc.ts';
import { mean, progress, progressDone, quantile, resultsDir } from './lib/stats.ts';
import { histogramSvg, lineSvg } from '../../sim/index.ts';
import { STALL_MS, type LoopReport } from './lib/loop-watch.ts';
import type { ClientCommands, ConnectResult, CountResult } from './lib/tracker-clients.ts';
import type { TrackerCommands, TrackerStats } from './lib/tracker-process.ts';

const { values: flags } = parseArgs({
  options: {
    peers: { type: 'string', default: '1000,5000,10000' },
    rate: { type: 'string', default: '1000' },
    'relay-seconds': { type: 'string', default: '20' },
    'hold-seconds': { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '64' },
    /** Write a V8 CPU profile of every tracker process into the results folder. */
    profile: { type: 'boolean', default: false },
  },
});
const requested = flags.peers.split(',').map((s) => Number(s.trim()));
const rate = Number(flags.rate);
const relaySeconds = Number(flags['relay-seconds']);
const holdSeconds = Number(flags['hold-seconds']);
const concurrency = Number(flags.concurrency);
if (requested.some((n) => !Number.isInteger(n) || n < 2))
  throw new Error('--peers: integers ≥ 2, comma-separated');
if (!(rate > 0) || !(relaySeconds > 0) || !(holdSeconds >= 0) || !(concurrency >= 1))
  throw new Error('--rate > 0, --relay-seconds > 0, --hold-seconds ≥ 0, --concurrency ≥ 1');

const root = path.resolve(import.meta.dirname, '../..');
const WARMUP_PEERS = 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = 1024 * 1024;

// ---- limits: each process holds N sockets; connections from 127.0.0.1 to one port use ephemeral ports
const FD_MARGIN = 256;
const limits = fileLimits();
const ports = ephemeralPorts();
const cap = Math.min(limits.usable - FD_MARGIN, ports - 1000);
console.error(
  `open files: soft ${limits.soft}, hard ${limits.hard}; children run with ${limits.usable}` +
    ` (ephemeral ports: ${ports}) → at most ${cap} peers`,
);
const peerCounts = [
  ...new Set(
    requested.map((n) => {
      if (n <= cap) return n;
      console.error(
        `N=${n} does not fit: each process needs N + ${FD_MARGIN} open files and the hard limit is ${limits.hard}` +
          ` (ephemeral ports: ${ports}); capping it to ${cap}. Raise the hard limit (limits.conf, or` +
          ` \`ulimit -Hn\` as root, or docker --ulimit nofile=65536) to measure more.`,
      );
      return cap;
    }),
  ),
].sort((a, b) => a - b);

const shutdown = (signal: string) => {
  console.error(`\n${signal}: stopping the children`);
  killAllChildren();
  process.exit(130);
};
process.once('SIGINT', () => shutdown('SIGINT'));
process.once('SIGTERM', () => shutdown('SIGTERM'));

// ---- one step
interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}
const percentiles = (v: readonly number[]): Percentiles => ({
  p50: quantile(v, 0.5),
  p95: quantile(v, 0.95),
  p99: quantile(v, 0.99),
  max: v.length ? Math.max(...v) : NaN,
  mean: mean(v),
});
const cpuPct = (a: TrackerStats, b: TrackerStats) =>
  (100 * (b.cpuUserUs + b.cpuSystemUs - a.cpuUserUs - a.cpuSystemUs)) / 1000 / (b.atMs - a.atMs);

interface Step {
  peers: number;
  join: {
    acked: number;
    failed: number;
    errors: Record<string, number>;
    ratePerS: number;
    trackerCpuPct: number;
  } & Pick<ConnectResult, 'durationS' | 'joinMs' | 'timeline'>;
  held: { afterHold: number; afterRelay: number; clients: CountResult; clientsAfterRelay: CountResult };
  memory: {
    rssBeforeMB: number;
    rssAtNMB: number;
    rssAfterLeaveMB: number;
    heapBeforeMB: number;
    heapAtNMB: number;
    rssPerPeerKB: number;
    heapPerPeerKB: number;
    clientsRssMB: number;
  };
  holdCpuPct: number;
  holdLag: TrackerStats['lag'];
  holdGc: TrackerStats['gc'];
  relay: {
    rate: number;
    seconds: number;
    sent: number;
    received: number;
    lost: number;
    refused: Record<string, number>;
    misdelivered: number;
    noPair: number;
    sendRate: number;
    latencyMs: Percentiles;
    trackerCpuS: number;
    trackerCpuPct: number;
    trackerElu: number;
    trackerLag: TrackerStats['lag'];
    trackerRelayed: number;
    trackerGc: TrackerStats['gc'];
    /** Client process CPU while sending (% of a core); cores busy machine-wide, and outside the bench. */
    clientCpuPct: number;
    machineCoresBusy: number;
    otherCoresBusy: number;
    loadAvg1: number;
    clientLag: TrackerStats['lag'];
    clientGc: TrackerStats['gc'];
    /** Signals slower than `slowMs`: how many overlapped a stall of the tracker's or the client process's loop. */
    slow: Attribution;
    /** Loop stalls and GC pauses of both processes during the relay, [ms since the first send, duration ms]. */
    timeline: {
      trackerStalls: number[][];
      trackerGc: number[][];
      clientStalls: number[][];
      clientGc: number[][];
    };
  };
  rejected: Record<string, number>;
  /** For the plots (rounded). */
  samples: { latencyMs: number[]; sentAtS: number[] };
}

const SLOW_MS = 20;
interface StallSummary {
  count: number;
  totalMs: number;
  maxMs: number;
  /** Stalls that overlapped a GC pause of 5 ms or more. */
  withGc: number;
}
interface Attribution {
  slowMs: number;
  slow: number;
  trackerStall: number;
  clientStall: number;
  both: number;
  neither: number;
  trackerStalls: StallSummary;
  clientStalls: StallSummary;
}
const overlaps = (a0: number, a1: number, [b0, d]: [number, number]) => b0 < a1 && b0 + d > a0;
function summarize(loop: LoopReport): StallSummary {
  return {
    count: loop.stalls.length,
    totalMs: loop.stalls.reduce((a, [, d]) => a + d, 0),
    maxMs: Math.max(0, ...loop.stalls.map(([, d]) => d)),
    withGc: loop.stalls.filter(([s, d]) => loop.gcPauses.some((g) => overlaps(s, s + d, g))).length,
  };
}
const relative = (list: [number, number][], t0: number) =>
  list.map(([at, d]) => [Math.round(at - t0), Math.round(d * 10) / 10]);
/** Matches every slow signal's flight (send → receive, wall clock) against both processes' loop stalls. */
function attribute(
  latencyMs: readonly number[],
  sentAtS: readonly number[],
  t0Epoch: number,
  tracker: LoopReport,
  client: LoopReport,
): Attribution {
  const a = { slowMs: SLOW_MS, slow: 0, trackerStall: 0, clientStall: 0, both: 0, neither: 0 };
  latencyMs.forEach((l, i) => {
    if (l <= SLOW_MS) return;
    a.slow++;
    const from = t0Epoch + sentAtS[i]! * 1000;
    const t = tracker.stalls.some((st) => overlaps(from, from + l, st));
    const c = client.stalls.some((st) => overlaps(from, from + l, st));
    if (t && c) a.both++;
    else if (t) a.trackerStall++;
    else if (c) a.clientStall++;
    else a.neither++;
  });
  return { ...a, trackerStalls: summarize(tracker), clientStalls: summarize(client) };
}

async function startTracker() {
  const t = new RpcChild<TrackerCommands>('tracker', 'test/bench/lib/tracker-process.ts', {
    root,
    nofile: limits.usable,
    nodeArgs: ['--expose-gc', ...(flags.profile ? ['--cpu-prof', `--cpu-prof-dir=${out}`] : [])],
  });
  const ready = (await t.waitEvent('ready', 60_000)) as RpcEvent & {
    port: number;
    channel: string;
    rendition: string;
  };
  return { t, ready };
}

async function waitEmpty(
  t: RpcChild<TrackerCommands>,
  label: string,
  timeoutMs: number,
): Promise<TrackerStats> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = await t.call('stats', {});
    if ((s.peers === 0 && s.sockets === 0) || Date.now() > end) return s;
    progress(`${label}: waiting for the tracker to settle (${s.peers} peers, ${s.sockets} sockets)`);
    await sleep(250);
  }
}

async function runStep(clients: RpcChild<ClientCommands>, n: number): Promise<Step> {
  const label = `N=${n}`;
  progress(`${label}: starting the tracker`);
  const { t, ready } = await startTracker();
  try {
    const connectArgs = {
      url: `http://127.0.0.1:${ready.port}`,
      channel: ready.channel,
      rendition: ready.rendition,
      concurrency,
    };
    // Warm-up: load and JIT the code paths in both processes so the baseline RSS includes them.
    progress(`${label}: warm-up with ${WARMUP_PEERS} peers`);
    await clients.call('connect', { ...connectArgs, n: WARMUP_PEERS });
    await clients.call('relay', { rate: 200, seconds: 1, drainMs: 2000 });
    await clients.call('disconnect', {});
    await waitEmpty(t, label, 30_000);
    const before = await t.call('stats', { gc: true });

    // 1. join ramp
    const offRamp = clients.onEvent((e) => {
      if (e.event === 'progress')
        progress(
          `${label}: joined ${e.acked}/${n} (${e.failed} failed), ${(e.elapsedS as number).toFixed(1)} s`,
        );
    });
    const rampFrom = await t.call('stats', {});
    const ramp = await clients.call('connect', { ...connectArgs, n });
    const rampTo = await t.call('stats', {});
    offRamp();
    progress(
      `${label}: ${ramp.acked}/${n} joined in ${ramp.durationS.toFixed(1)} s (${(ramp.acked / ramp.durationS).toFixed(0)}/s)`,
    );
    progressDone();

    // 2. hold
    await t.call('resetLag', {});
    const holdFrom = await t.call('stats', {});
    for (let s = 1; s <= holdSeconds; s++) {
      await sleep(1000);
      const c = await clients.call('count', {});
      progress(`${label}: holding ${s}/${holdSeconds} s, ${c.joined} joined and connected`);
    }
    const holdTo = await t.call('stats', {});
    const clientsHeld = await clients.call('count', {});
    const atN = await t.call('stats', { gc: true });
    const held = Math.min(clientsHeld.joined, atN.peers, atN.sockets);
    progress(`${label}: held ${held}/${n}; tracker RSS ${(atN.rss / MB).toFixed(0)} MB`);
    progressDone();

    // 3. relay
    await t.call('resetLag', {});
    const relayFrom = await t.call('stats', {});
    const machineFrom = cpuSnapshot();
    const selfFrom = process.cpuUsage();
    let relayTo: Promise<TrackerStats> | undefined;
    let machineTo = machineFrom;
    let selfCpuUs = 0;
    const offRelay = clients.onEvent((e) => {
      if (e.event === 'relay-progress')
        progress(
          `${label}: relaying ${(e.elapsedS as number).toFixed(0)}/${relaySeconds} s, ${e.sent} sent, ${e.received} received`,
        );
      if (e.event === 'relay-sent') {
        relayTo = t.call('stats', {});
        machineTo = cpuSnapshot();
        const self = process.cpuUsage(selfFrom);
        selfCpuUs = self.user + self.system;
      }
    });
    const relay = await clients.call('relay', { rate, seconds: relaySeconds, drainMs: 5000 });
    offRelay();
    const relayEnd = await (relayTo ?? t.call('stats', {}));
    const clientsAfterRelay = await clients.call('count', {});
    const afterRelay = await t.call('stats', {});
    const lat = percentiles(relay.latencyMs);
    progress(
      `${label}: relay ${relay.received}/${relay.sent} received, p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms`,
    );
    progressDone();

    // teardown: every client leaves; the tracker is restarted for the next N
    progress(`${label}: disconnecting`);
    await clients.call('disconnect', {});
    await waitEmpty(t, label, 60_000);
    const afterLeave = await t.call('stats', { gc: true });
    progressDone();

    const trackerCpuS =
      (relayEnd.cpuUserUs + relayEnd.cpuSystemUs - relayFrom.cpuUserUs - relayFrom.cpuSystemUs) / 1e6;
    // Everything else on the machine while the relay ran (other processes compete for the cores).
    const windowS = (machineTo.atMs - machineFrom.atMs) / 1000;
    const machineCores = coresBusy(machineFrom, machineTo);
    const benchCores = (trackerCpuS + (relay.sendCpuUs + selfCpuUs) / 1e6) / windowS;
    return {
      peers: n,
      join: {
        acked: ramp.acked,
        failed: ramp.failed,
        errors: ramp.errors,
        ratePerS: ramp.acked / ramp.durationS,
        trackerCpuPct: cpuPct(rampFrom, rampTo),
        durationS: ramp.durationS,
        joinMs: ramp.joinMs,
        timeline: ramp.timeline,
      },
      held: {
        afterHold: held,
        afterRelay: Math.min(clientsAfterRelay.joined, afterRelay.peers, afterRelay.sockets),
        clients: clientsHeld,
        clientsAfterRelay,
      },
      memory: {
        rssBeforeMB: before.rss / MB,
        rssAtNMB: atN.rss / MB,
        rssAfterLeaveMB: afterLeave.rss / MB,
        heapBeforeMB: before.heapUsed / MB,
        heapAtNMB: atN.heapUsed / MB,
        rssPerPeerKB: held ? (atN.rss - before.rss) / 1024 / held : NaN,
        heapPerPeerKB: held ? (atN.heapUsed - before.heapUsed) / 1024 / held : NaN,
        clientsRssMB: clientsHeld.rss / MB,
      },
      holdCpuPct: cpuPct(holdFrom, holdTo),
      holdLag: holdTo.lag,
      holdGc: holdTo.gc,
      relay: {
        rate,
        seconds: relaySeconds,
        sent: relay.sent,
        received: relay.received,
        lost: relay.sent - relay.received,
        refused: relay.refused,
        misdelivered: relay.misdelivered,
        noPair: relay.noPair,
        sendRate: relay.sendRate,
        latencyMs: lat,
        trackerCpuS,
        trackerCpuPct: cpuPct(relayFrom, relayEnd),
        trackerElu: relayEnd.elu,
        trackerLag: relayEnd.lag,
        trackerRelayed: relayEnd.signalsRelayed - relayFrom.signalsRelayed,
        trackerGc: relayEnd.gc,
        clientCpuPct: relay.sendCpuUs / 1e4 / windowS,
        machineCoresBusy: machineCores,
        otherCoresBusy: Math.max(0, machineCores - benchCores),
        loadAvg1: os.loadavg()[0]!,
        clientLag: relay.loop.lag,
        clientGc: relay.loop.gc,
        slow: attribute(relay.latencyMs, relay.sentAtS, relay.t0Epoch, relayEnd, relay.loop),
        timeline: {
          trackerStalls: relative(relayEnd.stalls, relay.t0Epoch),
          trackerGc: relative(relayEnd.gcPauses, relay.t0Epoch),
          clientStalls: relative(relay.loop.stalls, relay.t0Epoch),
          clientGc: relative(relay.loop.gcPauses, relay.t0Epoch),
        },
      },
      rejected: afterLeave.rejected,
      samples: {
        latencyMs: relay.latencyMs.map((v) => Math.round(v * 1000) / 1000),
        sentAtS: relay.sentAtS.map((v) => Math.round(v * 1000) / 1000),
      },
    };
  } finally {
    await t.stop();
  }
}

// ---- run
const out = resultsDir('tracker');
const steps: Step[] = [];
const clients = new RpcChild<ClientCommands>('clients', 'test/bench/lib/tracker-clients.ts', {
  root,
  nofile: limits.usable,
});
try {
  await clients.waitEvent('ready', 60_000);
  for (const n of peerCounts) steps.push(await runStep(clients, n));
} catch (err) {
  progressDone();
  console.error(`bench:tracker failed: ${(err as Error).stack ?? String(err)}`);
  killAllChildren();
  process.exit(1);
} finally {
  await clients.stop();
}

// ---- report
const f1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a');
const f0 = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : 'n/a');
const codes = (r: Record<string, number>) =>
  Object.entries(r)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
const gcText = (g: { count: number; totalMs: number; maxMs: number }) =>
  `${g.count} collections, ${f0(g.totalMs)} ms in all, longest ${f1(g.maxMs)} ms`;
const stallText = (x: StallSummary) =>
  `${x.count} (${f0(x.totalMs)} ms in all, longest ${f0(x.maxMs)} ms, ${x.withGc} overlapping a GC pause)`;
const slowText = (a: Attribution) =>
  `Signals slower than ${a.slowMs} ms: ${a.slow}; their flight overlapped a tracker loop stall (timer > ${STALL_MS} ms late) only: ${a.trackerStall},` +
  ` a client-process stall only: ${a.clientStall}, both: ${a.both}, neither: ${a.neither}.` +
  ` Loop stalls during the relay: tracker ${stallText(a.trackerStalls)}, client process ${stallText(a.clientStalls)}.`;
const table = [
  '| peers | held after hold / after relay | join rate (/s) | join p99 (ms) | tracker RSS before → at N (MB) | RSS per peer (KB) | heap per peer (KB) | tracker CPU idle (hold) | relay sent / received / lost | relay p50 / p95 / p99 / max (ms) | tracker CPU in relay | tracker loop delay p99 / max (ms) | other processes in relay (cores) |',
  '|---:|---|---:|---:|---|---:|---:|---:|---|---|---:|---|---:|',
  ...steps.map(
    (s) =>
      `| ${s.peers} | ${s.held.afterHold}/${s.peers} / ${s.held.afterRelay}/${s.peers} | ${f0(s.join.ratePerS)} | ${f0(s.join.joinMs.p99)} ` +
      `| ${f0(s.memory.rssBeforeMB)} → ${f0(s.memory.rssAtNMB)} | ${f1(s.memory.rssPerPeerKB)} | ${f1(s.memory.heapPerPeerKB)} ` +
      `| ${f0(s.holdCpuPct)} % | ${s.relay.sent} / ${s.relay.received} / ${s.relay.lost} ` +
      `| ${f1(s.relay.latencyMs.p50)} / ${f1(s.relay.latencyMs.p95)} / ${f1(s.relay.latencyMs.p99)} / ${f1(s.relay.latencyMs.max)} ` +
      `| ${f0(s.relay.trackerCpuPct)} % (${s.relay.trackerCpuS.toFixed(1)} s) | ${f1(s.relay.trackerLag.p99)} / ${f1(s.relay.trackerLag.max)} | ${s.relay.otherCoresBusy.toFixed(2)} |`,
  ),
].join('\n');

const last = steps.at(-1)!;
const machine = {
  cpus: os.cpus().length,
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
};
const result = {
  date: new Date().toISOString(),
  machine,
  settings: { requestedPeers: requested, peers: peerCounts, rate, relaySeconds, holdSeconds, concurrency },
  limits: { ...limits, ephemeralPorts: ports },
  steps: steps.map(({ samples: _s, ...rest }) => rest),
  samples: Object.fromEntries(steps.map((s) => [s.peers, s.samples])),
};
fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify(result, null, 2));

// plots
const plots: { file: string; alt: string }[] = [];
const plot = (file: string, alt: string, svg: string) => {
  fs.writeFileSync(path.join(out, file), svg);
  plots.push({ file, alt });
};
for (const s of steps) {
  const v = s.samples.latencyMs;
  if (v.length === 0) continue;
  const cut = quantile(v, 0.999);
  plot(
    `relay-latency-${s.peers}.svg`,
    `relay latency histogram, ${s.peers} peers`,
    histogramSvg({
      title: `Signal relay latency, ${s.peers} peers, ${rate}/s (above p99.9 = ${cut.toFixed(1)} ms not drawn)`,
      xLabel: 'send → receive (ms)',
      values: v.filter((x) => x <= cut),
      bins: 40,
    }),
  );
  // Latency over time in 250 ms buckets: median and max (GC pauses and timer work show as spikes).
  const buckets = new Map<number, number[]>();
  s.samples.sentAtS.forEach((at, i) => {
    const b = Math.floor(at * 4) / 4;
    const list = buckets.get(b) ?? [];
    list.push(v[i]!);
    buckets.set(b, list);
  });
  const keys = [...buckets.keys()].sort((a, b) => a - b);
  plot(
    `relay-latency-over-time-${s.peers}.svg`,
    `relay latency over time, ${s.peers} peers`,
    lineSvg({
      title: `Signal relay latency over time, ${s.peers} peers (250 ms buckets)`,
      xLabel: 'seconds into the relay phase',
      yLabel: 'ms',
      series: [
        { label: 'max', points: keys.map((k) => [k, Math.max(...buckets.get(k)!)] as [number, number]) },
        { label: 'median', points: keys.map((k) => [k, quantile(buckets.get(k)!, 0.5)] as [number, number]) },
      ],
    }),
  );
}
const byN = (fn: (s: Step) => number) =>
  steps.filter((s) => Number.isFinite(fn(s))).map((s) => [s.peers, fn(s)] as [number, number]);
plot(
  'relay-latency-vs-peers.svg',
  'relay latency percentiles vs peers',
  lineSvg({
    title: `Signal relay latency vs connected peers (${rate}/s)`,
    xLabel: 'peers',
    yLabel: 'ms',
    series: [
      { label: 'p50', points: byN((s) => s.relay.latencyMs.p50) },
      { label: 'p95', points: byN((s) => s.relay.latencyMs.p95) },
      { label: 'p99', points: byN((s) => s.relay.latencyMs.p99) },
    ],
  }),
);
plot(
  'rss-vs-peers.svg',
  'tracker RSS vs peers',
  lineSvg({
    title: 'Tracker RSS vs connected peers (after GC)',
    xLabel: 'peers',
    yLabel: 'MB',
    series: [
      { label: 'with N connected', points: byN((s) => s.memory.rssAtNMB) },
      { label: 'before clients', points: byN((s) => s.memory.rssBeforeMB) },
      { label: 'heap with N', points: byN((s) => s.memory.heapAtNMB) },
    ],
  }),
);
plot(
  'join-rate-vs-peers.svg',
  'join rate vs peers',
  lineSvg({
    title: `Join rate while ramping to N (concurrency ${concurrency})`,
    xLabel: 'peers',
    yLabel: 'joins acknowledged per second',
    series: [{ label: 'joins/s', points: byN((s) => s.join.ratePerS) }],
  }),
);
plot(
  'join-ramp.svg',
  'join ramp',
  lineSvg({
    title: 'Joins acknowledged over time',
    xLabel: 'seconds since the first connect',
    yLabel: 'peers joined',
    series: steps.map((s) => ({ label: `N=${s.peers}`, points: s.join.timeline })),
  }),
);

const held = last.held.afterHold;
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
const targets = [
  `| 10 000 peers held | ${held}/${last.peers} held (largest N measured: ${last.peers}) | ${verdict(last.peers >= 10_000 && held >= 10_000)} |`,
  `| relay p99 < 50 ms | ${f1(last.relay.latencyMs.p99)} ms at ${last.peers} peers, ${last.relay.lost} lost | ${verdict(last.relay.latencyMs.p99 < 50)} |`,
  `| < 20 KB tracker RSS per peer | ${f1(last.memory.rssPerPeerKB)} KB at ${last.peers} peers | ${verdict(last.memory.rssPerPeerKB < 20)} |`,
];
const details = steps
  .map(
    (s) =>
      `- **${s.peers} peers**: joins ${s.join.acked} acked, ${s.join.failed} failed${s.join.failed ? ` (${codes(s.join.errors)})` : ''}` +
      ` in ${s.join.durationS.toFixed(1)} s, tracker CPU ${f0(s.join.trackerCpuPct)} % of a core; connect → join ack p50 / p95 / p99 ${f0(s.join.joinMs.p50)} / ${f0(s.join.joinMs.p95)} / ${f0(s.join.joinMs.p99)} ms;` +
      ` mean neighbours ${s.held.clients.meanNeighbours.toFixed(1)};` +
      ` disconnects (not asked for) during hold and relay: ${codes(s.held.clientsAfterRelay.disconnects) || 'none'};` +
      ` tracker RSS after everyone left ${f0(s.memory.rssAfterLeaveMB)} MB; client process RSS ${f0(s.memory.clientsRssMB)} MB.` +
      ` Relay: ${s.relay.sendRate.toFixed(0)} sends/s achieved, ${s.relay.trackerRelayed} relayed by the tracker,` +
      ` refused ${codes(s.relay.refused) || 'none'}, misdelivered ${s.relay.misdelivered}, no pair ${s.relay.noPair};` +
      ` tracker event-loop utilisation ${(s.relay.trackerElu * 100).toFixed(0)} %, loop delay p50 / p99 / max ${f1(s.relay.trackerLag.p50)} / ${f1(s.relay.trackerLag.p99)} / ${f1(s.relay.trackerLag.max)} ms;` +
      ` tracker GC ${gcText(s.relay.trackerGc)};` +
      ` client process CPU ${f0(s.relay.clientCpuPct)} % of a core; machine ${s.relay.machineCoresBusy.toFixed(2)} of ${machine.cpus} cores busy,` +
      ` ${s.relay.otherCoresBusy.toFixed(2)} of them outside the bench (load average ${s.relay.loadAvg1.toFixed(2)});` +
      ` client process loop delay p99 / max ${f1(s.relay.clientLag.p99)} / ${f1(s.relay.clientLag.max)} ms, GC ${gcText(s.relay.clientGc)}` +
      ` (sender and receiver live there, so it is part of the latency).` +
      ` Tracker during the ${holdSeconds} s hold (no signaling): loop delay p99 / max ${f1(s.holdLag.p99)} / ${f1(s.holdLag.max)} ms, GC ${gcText(s.holdGc)}.` +
      ` ${slowText(s.relay.slow)}` +
      (Object.keys(s.rejected).length ? ` Tracker refusals: ${codes(s.rejected)}.` : ''),
  )
  .join('\n');

fs.writeFileSync(
  path.join(out, 'report.md'),
  `# Tracker benchmark (${result.date})

${machine.cpus} cores, ${machine.memGiB} GiB, Node ${machine.node}. One tracker process and one client process on 127.0.0.1;
peers join channel \`bench\` as \`node\` peers with up to ${concurrency} joins in flight; hold ${holdSeconds} s; relay ${rate} \`signal\`/s
for ${relaySeconds} s between random introduced pairs (ICE candidates carrying their send time). The tracker runs with per-IP limits
off, per-socket limits at 10 000 events/s and peer timeouts off (bench peers send no \`report\`s, so that traffic is not measured).
The tracker is restarted for every N; RSS is read after a forced GC; "before" is after a ${WARMUP_PEERS}-peer warm-up has left.
KB = 1024 bytes; RSS per peer is (RSS at N − RSS before) / peers held, and at small N it is mostly noise (pages the
heap already had committed get reused), so the heap-per-peer column is given too. Latency includes both ends' event loops in the client process (its delay is given below).
The last column is the CPU used machine-wide outside the bench's processes while the relay ran (from /proc/stat,
in cores): the bench shares the ${machine.cpus} cores with whatever else runs, and that shows in the latency tail.

${table}

"Lost" counts every signal not received, refusals by the tracker included (see the details).

## Targets (largest N)

| target | measured | |
|---|---|---|
${targets.join('\n')}

## Details

${details}

${plots.map((p) => `![${p.alt}](${p.file})`).join('\n\n')}
`,
);

console.log(table);
console.log(`report: ${path.relative(process.cwd(), path.join(out, 'report.md'))}`);
console.log(
  `peers_held=${held}/${last.peers} join_rate_per_s=${f0(last.join.ratePerS)} relay_p50_ms=${f1(last.relay.latencyMs.p50)}` +
    ` relay_p95_ms=${f1(last.relay.latencyMs.p95)} relay_p99_ms=${f1(last.relay.latencyMs.p99)} relay_max_ms=${f1(last.relay.latencyMs.max)}` +
    ` relay_lost=${last.relay.lost} rss_per_peer_kb=${f1(last.memory.rssPerPeerKB)} tracker_relay_cpu_pct=${f0(last.relay.trackerCpuPct)}`,
);
