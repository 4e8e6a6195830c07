/**
 * `npm run bench:peer [-- --viewers 10 --duration 120 --ladder SPEC --rendition R --stagger-ms 1000]`
 *
 * 1. Data channel throughput between two Node peers (real WebRTC on loopback) and the time to move one
 *    segment of each rendition of the ladder.
 * 2. A swarm: tracker + test-pattern source in this process, N Node viewers (real engine, playback
 *    model, WebRTC on loopback) in a child process, for `--duration` seconds: offload (from the
 *    origin's counters), stalls, startup p50/p95, latency behind the newest segment p50/p95, per-segment
 *    P2P transfer time, CPU and RSS per viewer.
 * Writes results/peer-<time>/{result.json,report.md,*.svg}; prints a summary line last.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  channelSettings,
  DEFAULT_LADDER,
  Origin,
  parseLadder,
  peakBandwidthBps,
  SourceChannel,
  TrackerLink,
  type Rendition,
} from '../../source/index.ts';
import { Tracker } from '../../tracker/index.ts';
import { measureDataChannel } from './lib/datachannel.ts';
import { progress, progressDone, quantile, resultsDir } from './lib/stats.ts';
import { histogramSvg, lineSvg } from '../../sim/index.ts';

const { values: flags } = parseArgs({
  options: {
    viewers: { type: 'string', default: '10' },
    duration: { type: 'string', default: '120' },
    ladder: { type: 'string' },
    rendition: { type: 'string' },
    'stagger-ms': { type: 'string', default: '1000' },
    'upload-kbps': { type: 'string', default: '0' },
    'segment-duration': { type: 'string', default: '2' },
    'skip-datachannel': { type: 'boolean', default: false },
  },
});
const viewers = Number(flags.viewers);
const durationS = Number(flags.duration);
const staggerMs = Number(flags['stagger-ms']);
const segS = Number(flags['segment-duration']);
if (!(viewers >= 1 && viewers <= 100) || !(durationS >= 10))
  throw new Error('--viewers 1..100, --duration ≥ 10');
const ladder: readonly Rendition[] = flags.ladder ? parseLadder(flags.ladder) : DEFAULT_LADDER;
const rendition = flags.rendition ?? ladder[0]!.name;
if (!ladder.some((r) => r.name === rendition))
  throw new Error(`--rendition must be one of ${ladder.map((r) => r.name)}`);
const out = resultsDir('peer');
const root = path.resolve(import.meta.dirname, '../..');

// ---- 1. data channel ----
const segmentBytes = (r: Rendition) => Math.round((peakBandwidthBps(r, true) / 8) * segS);
const dc: {
  chunkBytes: number;
  throughputMbps: number;
  segments: { rendition: string; bytes: number; ms: number }[];
}[] = [];
if (!flags['skip-datachannel']) {
  for (const chunkBytes of [16 * 1024, 64 * 1024 - 32]) {
    const segments: { rendition: string; bytes: number; ms: number }[] = [];
    let throughputMbps = 0;
    for (const r of ladder) {
      progress(`data channel: ${chunkBytes} B messages, ${r.name} segment…`);
      const m = await measureDataChannel({
        bytes: 32 * 1024 * 1024,
        chunkBytes,
        segmentBytes: segmentBytes(r),
        repeats: 3,
      });
      throughputMbps = Math.max(throughputMbps, m.throughputMbps);
      segments.push({ rendition: r.name, bytes: segmentBytes(r), ms: m.segmentMs });
    }
    dc.push({ chunkBytes, throughputMbps, segments });
  }
  progressDone();
  for (const d of dc)
    console.log(
      `data channel, ${d.chunkBytes} B messages: ${d.throughputMbps.toFixed(0)} Mbit/s; one segment: ` +
        d.segments
          .map((s) => `${s.rendition} ${(s.bytes / 1000).toFixed(0)} kB in ${s.ms.toFixed(1)} ms`)
          .join(', '),
    );
}

// ---- 2. swarm ----
const tracker = new Tracker({ reportIntervalMs: 2000, peerTimeoutMs: 10_000 });
await tracker.listen(0);
const settings = channelSettings('bench', { ladder, segmentDurationS: segS, title: 'peer bench' });
const dataDir = path.join(out, 'data');
const channel = new SourceChannel({ settings, input: { kind: 'testpattern' }, dataDir });
const origin = new Origin();
origin.addChannel(channel);
await origin.listen(0);
await channel.start();
const link = new TrackerLink({
  trackerUrl: tracker.url,
  channel,
  origin,
});
await new Promise<void>((resolve) => link.once('registered', () => resolve()));
await new Promise<void>((resolve) => {
  let n = 0;
  const on = () => {
    if (++n >= 2 * ladder.length) {
      channel.off('segment', on);
      resolve();
    }
  };
  channel.on('segment', on);
});

const originAtStart = origin.counters().bench!.segment.bytes;
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    path.join(root, 'test/bench/lib/viewer-process.ts'),
    tracker.url,
    'bench',
    String(viewers),
    String(staggerMs),
    String(durationS),
    rendition,
    flags['upload-kbps']!,
  ],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
);
type Tick = {
  type: 'tick';
  at: number;
  viewers: number;
  httpBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
  stalls: number;
};
type Final = {
  type: 'final';
  wallMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  rssMaxBytes: number;
  viewers: {
    stalls: number;
    stallMs: number;
    segmentsPlayed: number;
    segmentsOnTime: number;
    httpBytes: number;
    p2pBytes: number;
    uploadedBytes: number;
    startupMs: number | undefined;
    latencyS: number[];
    p2pSegmentMs: number[];
    httpSegmentMs: number[];
    rejected: number;
    firstTier: boolean;
    state: string;
  }[];
};
const ticks: (Tick & { originBytes: number })[] = [];
let final: Final | undefined;
let buf = '';
child.stdout.on('data', (d: Buffer) => {
  buf += d.toString();
  for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const msg = JSON.parse(line) as Tick | Final;
    if (msg.type === 'tick') {
      const originBytes = origin.counters().bench!.segment.bytes - originAtStart;
      ticks.push({ ...msg, originBytes });
      const consumed = msg.httpBytes + msg.p2pBytes;
      progress(
        `swarm: ${(msg.at / 1000).toFixed(0)}/${durationS} s, ${msg.viewers} viewers, offload ${consumed ? ((1 - originBytes / consumed) * 100).toFixed(1) : '-'} %, stalls ${msg.stalls}`,
      );
    } else final = msg;
  }
});
const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
progressDone();
if (child.pid && code === null) process.kill(child.pid, 'SIGKILL');
link.destroy();
await channel.destroy();
await origin.destroy();
await tracker.destroy();
fs.rmSync(dataDir, { recursive: true, force: true });
if (!final) throw new Error(`viewer process ended (${code}) without results`);

const v = final.viewers;
const consumed = v.reduce((s, x) => s + x.httpBytes + x.p2pBytes, 0);
const originBytes = ticks.at(-1)?.originBytes ?? 0;
const offload = consumed > 0 ? 1 - originBytes / consumed : NaN;
const startups = v.map((x) => (x.startupMs ?? NaN) / 1000).filter(Number.isFinite);
const latencies = v.flatMap((x) => x.latencyS);
const p2pMs = v.flatMap((x) => x.p2pSegmentMs);
const played = v.reduce((s, x) => s + x.segmentsPlayed, 0);
const onTime = v.reduce((s, x) => s + x.segmentsOnTime, 0);
const stalls = v.reduce((s, x) => s + x.stalls, 0);
const cpuPct = ((final.cpuUserMs + final.cpuSystemMs) / final.wallMs) * 100;
const result = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, node: process.version },
  ladder,
  rendition,
  segmentDurationS: segS,
  viewers,
  durationS,
  dataChannel: dc,
  swarm: {
    offload,
    physicalLimit: 1 - 1 / viewers,
    originSegmentBytes: originBytes,
    consumedBytes: consumed,
    stalls,
    stallMs: v.reduce((s, x) => s + x.stallMs, 0),
    continuity: played ? onTime / played : NaN,
    segmentsPlayed: played,
    rejectedSegments: v.reduce((s, x) => s + x.rejected, 0),
    startupS: { p50: quantile(startups, 0.5), p95: quantile(startups, 0.95) },
    latencyS: { p50: quantile(latencies, 0.5), p95: quantile(latencies, 0.95) },
    p2pSegmentMs: { p50: quantile(p2pMs, 0.5), p95: quantile(p2pMs, 0.95), count: p2pMs.length },
    viewerProcess: {
      cpuPercentOfOneCore: cpuPct,
      cpuPerViewerPct: cpuPct / viewers,
      rssMaxMB: final.rssMaxBytes / 1e6,
      rssPerViewerMB: final.rssMaxBytes / 1e6 / viewers,
    },
    uploadedBytesPerViewer: v.map((x) => x.uploadedBytes),
  },
  ticks,
};
fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify(result, null, 2));
const offloadSeries = ticks
  .map((t, i) => {
    const prev = ticks[Math.max(0, i - 10)]!;
    const dc2 = t.httpBytes + t.p2pBytes - (prev.httpBytes + prev.p2pBytes);
    return [t.at / 1000, dc2 > 0 ? Math.max(0, (1 - (t.originBytes - prev.originBytes) / dc2) * 100) : 0] as [
      number,
      number,
    ];
  })
  .slice(10);
fs.writeFileSync(
  path.join(out, 'offload-over-time.svg'),
  lineSvg({
    title: 'Offload over the last 10 s',
    xLabel: 's',
    yLabel: '%',
    series: [{ label: 'offload', points: offloadSeries }],
  }),
);
fs.writeFileSync(
  path.join(out, 'latency-histogram.svg'),
  histogramSvg({ title: 'Latency behind the newest published segment', xLabel: 's', values: latencies }),
);
fs.writeFileSync(
  path.join(out, 'p2p-segment-ms.svg'),
  histogramSvg({ title: 'P2P segment transfer time (request → verified)', xLabel: 'ms', values: p2pMs }),
);
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const sw = result.swarm;
fs.writeFileSync(
  path.join(out, 'report.md'),
  `# Peer benchmark (${result.date})

Ladder ${ladder.map((r) => r.name).join('/')}, ${segS} s segments, viewers on ${rendition}; ${viewers} Node viewers joining ${staggerMs} ms apart, ${durationS} s; ${result.machine.cpus} cores.

${dc.map((d) => `- data channel (${d.chunkBytes} B messages): ${d.throughputMbps.toFixed(0)} Mbit/s; one segment: ${d.segments.map((s) => `${s.rendition} ${(s.bytes / 1000).toFixed(0)} kB ${s.ms.toFixed(1)} ms`).join(', ')}`).join('\n')}

| figure | value | target |
|---|---|---|
| offload (origin counters) | ${(sw.offload * 100).toFixed(1)} % (limit ${(sw.physicalLimit * 100).toFixed(0)} %) | ≥ 95 % at 30 viewers |
| stalls / stall time | ${sw.stalls} / ${(sw.stallMs / 1000).toFixed(1)} s | 0 |
| continuity (segments ready at their deadline) | ${f2(sw.continuity)} | ≥ 0.999 |
| startup p50 / p95 | ${f2(sw.startupS.p50)} / ${f2(sw.startupS.p95)} s | p95 ≤ 2 s |
| latency behind newest segment p50 / p95 | ${f2(sw.latencyS.p50)} / ${f2(sw.latencyS.p95)} s | p50 ≤ ${3 * segS} s |
| P2P segment transfer p50 / p95 | ${sw.p2pSegmentMs.p50.toFixed(0)} / ${sw.p2pSegmentMs.p95.toFixed(0)} ms (${sw.p2pSegmentMs.count} transfers) | |
| CPU per viewer | ${sw.viewerProcess.cpuPerViewerPct.toFixed(1)} % of a core | |
| RSS per viewer | ${sw.viewerProcess.rssPerViewerMB.toFixed(0)} MB (process max ${sw.viewerProcess.rssMaxMB.toFixed(0)} MB) | |
| segments rejected | ${sw.rejectedSegments} | 0 |

![offload](offload-over-time.svg)

![latency](latency-histogram.svg)

![p2p transfer](p2p-segment-ms.svg)
`,
);
console.log(`report: ${path.relative(process.cwd(), path.join(out, 'report.md'))}`);
console.log(
  `offload=${f2(sw.offload)} stalls=${sw.stalls} continuity=${f2(sw.continuity)} startup_p50_s=${f2(sw.startupS.p50)} startup_p95_s=${f2(sw.startupS.p95)} ` +
    `latency_p50_s=${f2(sw.latencyS.p50)} latency_p95_s=${f2(sw.latencyS.p95)} p2p_segment_p50_ms=${sw.p2pSegmentMs.p50.toFixed(0)} ` +
    `cpu_per_viewer_pct=${sw.viewerProcess.cpuPerViewerPct.toFixed(1)} rss_per_viewer_mb=${sw.viewerProcess.rssPerViewerMB.toFixed(0)} viewers=${viewers}`,
);
process.exit(0);
