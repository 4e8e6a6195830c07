/**
 * `npm run bench -- --scenario NAME --viewers N --browsers K --duration SECONDS [options]`
 *
 * The swarm benchmark on the real stack, all on 127.0.0.1: a STUN server and a test-pattern source
 * (ffmpeg, signed segments, origin) in this process, the tracker in its own process (`peertv tracker`),
 * N Node viewers (the real engine and playback model over real WebRTC) in child processes, and K
 * headless Chromium viewers playing the real player (hls.js + the P2P fragment loader).
 *
 * Scenarios: steady (default N = 30, K = 3), flash-crowd (everyone joins within 10 s), churn (20 % of
 * the Node viewers leave and as many join every --churn-interval s), poison (20 % of the Node peers
 * corrupt every chunk they upload), slow (a third of the peers capped at half the stream's bitrate),
 * http-only (P2P off). `--baseline` runs an http-only phase after the scenario in the same run.
 *
 * Reports offload (from the origin's own counters), continuity, stalls and rebuffering, startup and
 * latency percentiles, origin egress over time, peers' upload distribution, CPU and RSS; writes
 * results/swarm-<time>/{result.json,report.md,*.svg}. The last line is the one-line summary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Browser, Page } from 'playwright-core';
import {
  channelSettings,
  DEFAULT_LADDER,
  parseLadder,
  SourceChannel,
  TrackerLink,
  type Rendition,
} from '../../source/index.ts';
import { StunServer } from '../../stun/index.ts';
import { buildPlayer } from '../../scripts/build-player.ts';
import { launchChromium, openPlayerPage, type PlayerLog } from '../helpers/browser.ts';
import { liveOrigin, segments, waitFor } from '../helpers/source.ts';
import { findDescendant, procUsage, type ProcUsage } from './lib/machine.ts';
import { fileLimits, RpcChild } from './lib/rpc.ts';
import { intFlag, parseFlags } from '../../cli/args.ts';
import { benchUsage, checkFlags, progress, progressDone, quantile, resultsDir } from './lib/stats.ts';
import { histogramSvg, lineSvg } from './lib/svg.ts';
import type { SwarmViewerCommands, ViewerFigures, ViewerRole } from './lib/swarm-viewers.ts';

const SCENARIOS = ['steady', 'flash-crowd', 'churn', 'poison', 'slow', 'http-only'] as const;
type Scenario = (typeof SCENARIOS)[number];
const LIGHT_LADDER = '480p:854x480:1200:96,240p:426x240:400:64';
const root = path.resolve(import.meta.dirname, '../..');

function usage(message: string): never {
  return benchUsage('bench', message);
}

const { values: flags } = checkFlags('bench', () =>
  parseFlags(process.argv.slice(2), {
    scenario: { type: 'string' },
    viewers: { type: 'string' },
    browsers: { type: 'string' },
    duration: { type: 'string' },
    'stagger-ms': { type: 'string' },
    ladder: { type: 'string' },
    light: { type: 'boolean' },
    rendition: { type: 'string' },
    'segment-duration': { type: 'string' },
    fps: { type: 'string' },
    preset: { type: 'string' },
    'churn-interval': { type: 'string' },
    'per-process': { type: 'string' },
    baseline: { type: 'boolean' },
  }),
);
if (flags.help) {
  console.log(`Usage: npm run bench -- [options]
  --scenario NAME        ${SCENARIOS.join(', ')} (default steady)
  --viewers N            Node viewers (default 30)
  --browsers K           headless Chromium viewers (default 3)
  --duration S           seconds from the first join (default 120)
  --stagger-ms MS        between joins (default: steady 500, flash-crowd 10 s / N)
  --ladder SPEC | --light  the source's ladder (default: 720p/480p/360p; --light: 480p/240p)
  --rendition R          the Node viewers' rendition (default: the ladder's first)
  --segment-duration S   (default 2)
  --fps N, --preset P    the source's frame rate and x264 preset (default 30, veryfast)
  --churn-interval S     churn: seconds between waves (default 60)
  --per-process N        Node viewers per child process (default 5)
  --baseline             also run an http-only phase in the same run, for comparison`);
  process.exit(0);
}
const scenario = (flags.scenario ?? 'steady') as Scenario;
if (!SCENARIOS.includes(scenario)) usage(`--scenario must be one of ${SCENARIOS.join(', ')}`);
const int = (name: keyof typeof flags, fallback: number, min: number, max: number): number =>
  checkFlags('bench', () => intFlag(name, flags[name] as string | undefined, fallback, min, max));
const viewers = int('viewers', 30, 0, 200);
const browsers = int('browsers', 3, 0, 8);
const durationS = int('duration', 120, 10, 3600);
const segS = int('segment-duration', 2, 1, 10);
const churnIntervalS = int('churn-interval', 60, 5, 3600);
const perProcess = int('per-process', 5, 1, 100);
if (viewers + browsers === 0) usage('no viewers: give --viewers or --browsers');
const staggerMs = int(
  'stagger-ms',
  scenario === 'flash-crowd' ? Math.floor(10_000 / (viewers + browsers)) : 500,
  0,
  60_000,
);
let ladder: readonly Rendition[];
try {
  ladder = flags.ladder
    ? parseLadder(flags.ladder)
    : flags.light
      ? parseLadder(LIGHT_LADDER)
      : DEFAULT_LADDER;
} catch (err) {
  usage((err as Error).message);
}
const rendition = flags.rendition ?? ladder[0]!.name;
const watched = ladder.find((r) => r.name === rendition);
if (!watched) usage(`--rendition must be one of ${ladder.map((r) => r.name).join(', ')}`);
const streamKbps = watched.videoKbps + watched.audioKbps;
const out = resultsDir('swarm');
const startedAt = new Date();

// ---------------------------------------------------------------- infrastructure

const children: ChildProcess[] = [];
const rpcs: RpcChild<SwarmViewerCommands>[] = [];
let browser: Browser | undefined;
let cleaning: Promise<void> | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    await browser?.close().catch(() => {});
    await Promise.all(rpcs.map((r) => r.stop(5000).catch(() => r.kill())));
    for (const c of children)
      if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
  })());
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
// Whatever happens, no child outlives the bench (killed by pid).
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) c.kill('SIGKILL');
});

progress('building the player, starting STUN, tracker and source…');
await buildPlayer();
const stun = new StunServer({ host: '127.0.0.1', port: 0, tcp: false, ratePerS: 0 });
const stunPorts = await stun.listen();

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-swarm-'));
const trackerProc = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    'cli/main.ts',
    'tracker',
    '--port',
    '0',
    '--data-dir',
    path.join(dataDir, 'tracker-data'),
    '--ice-server',
    `stun:127.0.0.1:${stunPorts.udp}`,
    '--report-interval',
    '2',
    '--max-connections-per-ip',
    '0',
  ],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_NO_WARNINGS: '1' } },
);
children.push(trackerProc);
const trackerUrl = await new Promise<string>((resolve, reject) => {
  const rl = readline.createInterface({ input: trackerProc.stdout! });
  rl.on('line', (line) => {
    const m = /^tracker: (http:\/\/\S+)/.exec(line);
    if (m) resolve(m[1]!);
  });
  trackerProc.once('exit', (code) => reject(new Error(`tracker exited (${code})`)));
});

const CHANNEL = 'bench';
let settings: ReturnType<typeof channelSettings>;
try {
  settings = channelSettings(CHANNEL, {
    ladder,
    segmentDurationS: segS,
    fps: int('fps', 30, 1, 60),
    x264Preset: (flags.preset ?? 'veryfast') as ReturnType<typeof channelSettings>['x264Preset'],
    title: 'swarm benchmark',
  });
} catch (err) {
  usage((err as Error).message);
}
const channel = new SourceChannel({ settings, input: { kind: 'testpattern' }, dataDir });
/** What the source published: `rendition/seq` → SHA-256, to check every segment the viewers stored. */
const published = new Map<string, string>();
let publishedCount = 0;
channel.on('segment', (a) => {
  published.set(`${a.rendition}/${a.mediaSequence}`, a.sha256);
  if (a.rendition === ladder[0]!.name) publishedCount++;
});
const { origin } = await liveOrigin(channel);
const link = new TrackerLink({ trackerUrl, channel, origin });
await waitFor(link, 'registered', 30_000);
await segments(channel, 2 * ladder.length);

// ---------------------------------------------------------------- one phase

interface BrowserFigures {
  index: number;
  rendition: string;
  startupMs: number | null;
  stalls: number;
  stallMs: number;
  playedS: number;
  httpBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
  latencyS: number[];
  errors: string[];
}

interface Tick {
  atS: number;
  nodeViewers: number;
  browsersPlaying: number;
  originBytes: number;
  consumedBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
  stalls: number;
  tracker?: ProcUsage;
}

interface PhaseResult {
  name: string;
  p2p: boolean;
  ticks: Tick[];
  nodes: ViewerFigures[];
  browsers: BrowserFigures[];
  originSegmentBytes: number;
  viewerCpu: { cpuMs: number; wallMs: number; rssMaxBytes: number }[];
  tracker: { cpuPctOfCore: number; rssMaxMB: number };
  browserCpuPctOfCore: number | null;
  corruptedStored: number;
  checkedStored: number;
  /** Media seconds the source published per wall second (< 1: the encoder fell behind live). */
  sourceRealTime: number;
  /** Viewers that could not join or viewer groups lost (counted and reported, never hidden). */
  joinErrors: string[];
}

type BrowserPage = Page & { figures: BrowserFigures };

async function openBrowserViewer(index: number, p2p: boolean): Promise<BrowserPage> {
  const { page, errors } = await openPlayerPage(browser!, trackerUrl, {
    tracker: trackerUrl,
    channel: CHANNEL,
    loopbackOnly: true,
    p2p,
    // HTTP-only players never join the tracker: they need the origin.
    originUrl: origin.publicUrl,
  });
  return Object.assign(page, {
    figures: {
      index,
      rendition: '',
      startupMs: null,
      stalls: 0,
      stallMs: 0,
      playedS: 0,
      httpBytes: 0,
      p2pBytes: 0,
      uploadedBytes: 0,
      latencyS: [],
      errors,
    },
  });
}

async function sampleBrowser(page: BrowserPage): Promise<void> {
  const s = await page
    .evaluate(() => {
      const w = window as unknown as {
        playerLog: PlayerLog;
        peertv: {
          stats(): {
            rendition: string;
            httpBytes: number;
            p2pBytes: number;
            uploadedBytes: number;
            latencyS: number | null;
            state: string;
          };
        };
      };
      const video = document.getElementById('v') as HTMLVideoElement;
      const l = w.playerLog;
      return {
        ...w.peertv.stats(),
        startupMs: l.startupMs,
        stalls: l.stalls,
        stallMs: l.stallMs + (l.waitingSince >= 0 ? performance.now() - l.waitingSince : 0),
        playedS: video.currentTime,
      };
    })
    .catch(() => undefined);
  if (!s) return;
  const f = page.figures;
  f.startupMs = s.startupMs >= 0 ? s.startupMs : null;
  f.stalls = s.stalls;
  f.stallMs = s.stallMs;
  f.playedS = s.playedS;
  f.rendition = s.rendition;
  f.httpBytes = s.httpBytes;
  f.p2pBytes = s.p2pBytes;
  f.uploadedBytes = s.uploadedBytes;
  if (s.state === 'playing' && typeof s.latencyS === 'number') f.latencyS.push(s.latencyS);
}

async function runPhase(name: string, p2p: boolean): Promise<PhaseResult> {
  const groups = Math.ceil(viewers / perProcess);
  const phaseRpcs: RpcChild<SwarmViewerCommands>[] = [];
  for (let g = 0; g < groups; g++) {
    const rpc = new RpcChild<SwarmViewerCommands>(`viewers-${name}-${g}`, 'test/bench/lib/swarm-viewers.ts', {
      root,
      // Every WebRTC connection holds a few descriptors (sockets, event loops of its threads).
      nofile: fileLimits(65_536).usable,
      args: [trackerUrl, CHANNEL, rendition, String(g * 10_000), origin.publicUrl],
    });
    rpcs.push(rpc);
    phaseRpcs.push(rpc);
  }
  // Joins go out only once every group is up, so the stagger is real.
  await Promise.all(phaseRpcs.map((r) => r.waitEvent('ready', 60_000)));
  browser ??= browsers > 0 ? await launchChromium() : undefined;
  const pages: BrowserPage[] = [];
  const originBase = origin.counters()[CHANNEL]!.segment.bytes;
  const publishedAtStart = publishedCount;
  const t0 = Date.now();
  const ticks: Tick[] = [];
  const trackerPid = trackerProc.pid!;
  const trackerStart = procUsage(trackerPid);
  const browserPid = browser ? findDescendant(process.pid, /^chrom/) : undefined;
  const browserStart = browserPid ? procUsage(browserPid, true) : undefined;
  let trackerRssMax = 0;

  // Who joins as what: roles by scenario, spread over the groups, interleaved in time with browsers.
  const poisonN = scenario === 'poison' && p2p ? Math.round(viewers * 0.2) : 0;
  const slowN = scenario === 'slow' && p2p ? Math.round(viewers / 3) : 0;
  // Poisoners and slow peers spread over the join order (every 5th / every 3rd, from the second).
  const roles: ViewerRole[] = Array.from({ length: viewers }, () => 'honest' as ViewerRole);
  const spread = (n: number, role: ViewerRole) => {
    const step = n > 0 ? viewers / n : 0;
    for (let i = 0; i < n; i++) {
      let j = Math.min(viewers - 1, Math.floor(1 + i * step));
      while (roles[j] !== 'honest') j = (j + 1) % viewers;
      roles[j] = role;
    }
  };
  spread(poisonN, 'poison');
  spread(Math.min(slowN, viewers - poisonN), 'slow');
  const slowCapKbps = Math.max(50, Math.round(streamKbps / 2));
  const joinErrors: string[] = [];

  const joins = async () => {
    const total = viewers + browsers;
    for (let i = 0, node = 0, b = 0; i < total; i++) {
      // Browsers spread evenly among the Node viewers.
      const browserTurn = b < browsers && (node >= viewers || (i + 1) * browsers >= (b + 1) * total);
      if (browserTurn) {
        pages.push(await openBrowserViewer(b++, p2p));
      } else {
        const role = roles[node]!;
        phaseRpcs[node % groups]!.call('join', {
          count: 1,
          staggerMs: 0,
          role,
          uploadCapKbps: role === 'slow' ? slowCapKbps : 0,
          p2p,
        }).catch((err: Error) => joinErrors.push(err.message.split('\n')[0]!));
        node++;
      }
      if (i < total - 1) await new Promise((r) => setTimeout(r, staggerMs));
    }
  };
  const joining = joins();

  let nextChurnS = churnIntervalS;
  let churnWaves = 0;
  while (Date.now() - t0 < durationS * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    const atS = (Date.now() - t0) / 1000;
    // No wave in the last 10 s: the replacements would have no time to be measured.
    if (scenario === 'churn' && p2p && atS >= nextChurnS && atS < durationS - 10) {
      nextChurnS += churnIntervalS;
      churnWaves++;
      // 20 % of the Node viewers leave; as many fresh ones join.
      const perGroup = Math.max(1, Math.round((viewers * 0.2) / groups));
      for (const rpc of phaseRpcs) {
        const left = await rpc.call('leave', { count: perGroup });
        rpc
          .call('join', { count: left, staggerMs: 200, role: 'honest', uploadCapKbps: 0, p2p })
          .catch((err: Error) => joinErrors.push(err.message.split('\n')[0]!));
      }
    }
    const samples = await Promise.all(
      phaseRpcs.map((r) => r.call('sample', {}, 10_000).catch(() => undefined)),
    );
    await Promise.all(pages.map(sampleBrowser));
    const tracker = procUsage(trackerPid);
    trackerRssMax = Math.max(trackerRssMax, tracker?.rssBytes ?? 0);
    const sum = (k: 'httpBytes' | 'p2pBytes' | 'uploadedBytes' | 'stalls' | 'viewers') =>
      samples.reduce((s, x) => s + (x?.[k] ?? 0), 0);
    const bSum = (k: 'httpBytes' | 'p2pBytes' | 'uploadedBytes' | 'stalls') =>
      pages.reduce((s, p) => s + p.figures[k], 0);
    const tick: Tick = {
      atS,
      nodeViewers: sum('viewers'),
      browsersPlaying: pages.filter((p) => p.figures.startupMs !== null).length,
      originBytes: origin.counters()[CHANNEL]!.segment.bytes - originBase,
      consumedBytes: sum('httpBytes') + sum('p2pBytes') + bSum('httpBytes') + bSum('p2pBytes'),
      p2pBytes: sum('p2pBytes') + bSum('p2pBytes'),
      uploadedBytes: sum('uploadedBytes') + bSum('uploadedBytes'),
      stalls: sum('stalls') + bSum('stalls'),
      ...(tracker && { tracker }),
    };
    ticks.push(tick);
    const off =
      tick.consumedBytes > 0 ? `${((1 - tick.originBytes / tick.consumedBytes) * 100).toFixed(1)} %` : '-';
    progress(
      `${name}: ${Math.round(atS)}/${durationS} s, ${tick.nodeViewers} node + ${pages.length} browser viewers, offload ${off}, stalls ${tick.stalls}${churnWaves ? `, churn waves ${churnWaves}` : ''}`,
    );
  }
  await joining;
  await Promise.all(pages.map(sampleBrowser));
  // A group that died (it should not) loses its viewers' figures: say so in the report, never hide it.
  const finals = (
    await Promise.all(
      phaseRpcs.map((r) =>
        r.call('final', {}, 30_000).catch((err: Error) => {
          joinErrors.push(`viewer group lost: ${err.message.split('\n')[0]}`);
          return undefined;
        }),
      ),
    )
  ).filter((f) => f !== undefined);
  const originSegmentBytes = origin.counters()[CHANNEL]!.segment.bytes - originBase;
  const trackerEnd = procUsage(trackerPid);
  const browserEnd = browserPid ? procUsage(browserPid, true) : undefined;
  const wallS = (Date.now() - t0) / 1000;
  const sourceRealTime = ((publishedCount - publishedAtStart) * segS) / wallS;
  for (const p of pages) await p.context().close();
  await Promise.all(phaseRpcs.map((r) => r.stop(5000)));

  const nodes = finals.flatMap((f) => f.viewers);
  let corrupted = 0;
  let checked = 0;
  for (const v of nodes)
    for (const [key, sha] of Object.entries(v.stored)) {
      const want = published.get(key);
      if (want === undefined) continue;
      checked++;
      if (want !== sha) corrupted++;
    }
  return {
    name,
    p2p,
    ticks,
    nodes: nodes.map((v) => ({ ...v, stored: {} })),
    browsers: pages.map((p) => p.figures),
    originSegmentBytes,
    viewerCpu: finals.map((f) => ({
      cpuMs: f.cpuUserMs + f.cpuSystemMs,
      wallMs: f.wallMs,
      rssMaxBytes: f.rssMaxBytes,
    })),
    tracker: {
      cpuPctOfCore:
        trackerStart && trackerEnd ? ((trackerEnd.cpuMs - trackerStart.cpuMs) / (wallS * 1000)) * 100 : NaN,
      rssMaxMB: trackerRssMax / 1e6,
    },
    browserCpuPctOfCore:
      browserStart && browserEnd ? ((browserEnd.cpuMs - browserStart.cpuMs) / (wallS * 1000)) * 100 : null,
    corruptedStored: corrupted,
    checkedStored: checked,
    joinErrors,
    sourceRealTime,
  };
}

// ---------------------------------------------------------------- run and report

const phases: PhaseResult[] = [];
try {
  phases.push(await runPhase(scenario, scenario !== 'http-only'));
  if (flags.baseline && scenario !== 'http-only') phases.push(await runPhase('http-only', false));
} finally {
  progressDone();
  await cleanup();
  link.destroy();
  await channel.destroy();
  await origin.close();
  await stun.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
}

const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');

function figures(ph: PhaseResult) {
  const honest = ph.nodes.filter((v) => v.role !== 'poison');
  const consumed = [
    ...ph.nodes.map((v) => v.httpBytes + v.p2pBytes),
    ...ph.browsers.map((b) => b.httpBytes + b.p2pBytes),
  ].reduce((a, b) => a + b, 0);
  const offload = consumed > 0 ? 1 - ph.originSegmentBytes / consumed : NaN;
  // Steady state: the second half of the run, from the ticks.
  const mid = ph.ticks[Math.floor(ph.ticks.length / 2)];
  const last = ph.ticks.at(-1);
  const steadyOffload =
    mid && last && last.consumedBytes > mid.consumedBytes
      ? 1 - (last.originBytes - mid.originBytes) / (last.consumedBytes - mid.consumedBytes)
      : NaN;
  const played = honest.reduce((s, v) => s + v.segmentsPlayed, 0);
  const onTime = honest.reduce((s, v) => s + v.segmentsOnTime, 0);
  const startups = [...honest.map((v) => v.startupMs), ...ph.browsers.map((b) => b.startupMs)].flatMap((x) =>
    x === null ? [] : [x / 1000],
  );
  const latencies = [...honest.flatMap((v) => v.latencyS), ...ph.browsers.flatMap((b) => b.latencyS)];
  const stallsPer = [...honest.map((v) => v.stalls), ...ph.browsers.map((b) => b.stalls)];
  const stallMs = honest.reduce((s, v) => s + v.stallMs, 0) + ph.browsers.reduce((s, b) => s + b.stallMs, 0);
  const watchedS =
    honest.reduce((s, v) => s + v.segmentsPlayed * segS, 0) + ph.browsers.reduce((s, b) => s + b.playedS, 0);
  const viewerCpuPct = ph.viewerCpu.reduce((s, c) => s + c.cpuMs / c.wallMs, 0) * 100;
  const nodeCount = Math.max(1, ph.nodes.length);
  return {
    viewers: ph.nodes.length + ph.browsers.length,
    nodeViewers: ph.nodes.length,
    browserViewers: ph.browsers.length,
    poisoners: ph.nodes.length - honest.length,
    offload,
    steadyOffload,
    // One copy of each rendition in use must leave the origin.
    physicalLimit:
      1 -
      new Set([...ph.nodes.map((v) => v.rendition), ...ph.browsers.map((b) => b.rendition)].filter(Boolean))
        .size /
        Math.max(1, ph.nodes.length + ph.browsers.length),
    originSegmentBytes: ph.originSegmentBytes,
    consumedBytes: consumed,
    continuity: played ? onTime / played : NaN,
    segmentsPlayed: played,
    stalls: stallsPer.reduce((a, b) => a + b, 0),
    stallS: stallMs / 1000,
    rebufferRatio: watchedS > 0 ? stallMs / 1000 / (watchedS + stallMs / 1000) : NaN,
    startupS: { p50: quantile(startups, 0.5), p95: quantile(startups, 0.95), n: startups.length },
    latencyS: { p50: quantile(latencies, 0.5), p95: quantile(latencies, 0.95) },
    rejectedSegments: honest.reduce((s, v) => s + v.rejected, 0),
    poisonersDropped: honest.reduce((s, v) => s + v.badPeersDropped, 0),
    corruptedStored: ph.corruptedStored,
    checkedStored: ph.checkedStored,
    browserErrors: ph.browsers.flatMap((b) => b.errors),
    joinErrors: ph.joinErrors,
    sourceRealTime: ph.sourceRealTime,
    cpu: {
      trackerPctOfCore: ph.tracker.cpuPctOfCore,
      trackerRssMB: ph.tracker.rssMaxMB,
      nodeViewerPctOfCoreEach: viewerCpuPct / nodeCount,
      nodeViewerRssMBEach: ph.viewerCpu.reduce((s, c) => s + c.rssMaxBytes, 0) / 1e6 / nodeCount,
      chromiumPctOfCore: ph.browserCpuPctOfCore,
    },
    uploadedMB: [...ph.nodes.map((v) => v.uploadedBytes), ...ph.browsers.map((b) => b.uploadedBytes)].map(
      (b) => b / 1e6,
    ),
  };
}

const results = phases.map((ph) => ({
  phase: ph.name,
  p2p: ph.p2p,
  figures: figures(ph),
  ticks: ph.ticks,
  nodes: ph.nodes,
  browsers: ph.browsers,
}));
const main = results[0]!;
const m = main.figures;
fs.writeFileSync(
  path.join(out, 'result.json'),
  JSON.stringify(
    {
      date: startedAt.toISOString(),
      machine: { cpus: os.cpus().length, node: process.version },
      scenario,
      ladder,
      rendition,
      segmentDurationS: segS,
      viewers,
      browsers,
      durationS,
      staggerMs,
      phases: results,
    },
    null,
    2,
  ),
);

// Plots.
const windowed = (ticks: Tick[], f: (a: Tick, b: Tick) => number, w = 10) =>
  ticks.slice(w).map((t, i) => [t.atS, f(ticks[i]!, t)] as [number, number]);
fs.writeFileSync(
  path.join(out, 'offload-over-time.svg'),
  lineSvg({
    title: 'Offload over the last 10 s (origin counters)',
    xLabel: 's',
    yLabel: '%',
    series: results.map((r) => ({
      label: r.phase,
      points: windowed(r.ticks, (a, b) =>
        b.consumedBytes > a.consumedBytes
          ? Math.max(0, (1 - (b.originBytes - a.originBytes) / (b.consumedBytes - a.consumedBytes)) * 100)
          : 0,
      ),
    })),
  }),
);
fs.writeFileSync(
  path.join(out, 'origin-egress.svg'),
  lineSvg({
    title: 'Origin segment egress (10 s average)',
    xLabel: 's',
    yLabel: 'Mbit/s',
    series: results.map((r) => ({
      label: r.phase,
      points: windowed(r.ticks, (a, b) => ((b.originBytes - a.originBytes) * 8) / 1e6 / (b.atS - a.atS)),
    })),
  }),
);
fs.writeFileSync(
  path.join(out, 'latency.svg'),
  histogramSvg({
    title: `Latency behind the newest published segment (${main.phase})`,
    xLabel: 's',
    values: [...main.nodes.flatMap((v) => v.latencyS), ...main.browsers.flatMap((b) => b.latencyS)],
  }),
);
fs.writeFileSync(
  path.join(out, 'stalls.svg'),
  lineSvg({
    title: 'Stalls so far (all viewers)',
    xLabel: 's',
    yLabel: 'stalls',
    series: results.map((r) => ({
      label: r.phase,
      points: r.ticks.map((t) => [t.atS, t.stalls] as [number, number]),
    })),
  }),
);
fs.writeFileSync(
  path.join(out, 'upload-distribution.svg'),
  histogramSvg({
    title: `Bytes uploaded per viewer (${main.phase})`,
    xLabel: 'MB',
    values: m.uploadedMB,
    bins: 20,
  }),
);

const row = (label: string, f: (x: ReturnType<typeof figures>) => string, target = '') =>
  `| ${label} | ${results.map((r) => f(r.figures)).join(' | ')} | ${target} |`;
const md = `# Swarm benchmark: ${scenario} (${startedAt.toISOString()})

${viewers} Node viewers (${rendition}) and ${browsers} Chromium viewers (hls.js, automatic rendition), joining ${staggerMs} ms apart, ${durationS} s; ladder ${ladder.map((r) => r.name).join('/')} at ${settings.fps} fps (x264 ${settings.x264Preset}), ${segS} s segments; tracker, STUN and source on this ${os.cpus().length}-core machine, all on 127.0.0.1.${scenario === 'poison' ? ` ${m.poisoners} Node peers upload corrupted chunks (one byte flipped per chunk).` : ''}${scenario === 'slow' ? ` A third of the peers are capped at ${Math.max(50, Math.round(streamKbps / 2))} kbit/s upload (half the stream).` : ''}${scenario === 'churn' ? ` Every ${churnIntervalS} s, 20 % of the Node viewers leave and as many join.` : ''}

| figure | ${results.map((r) => r.phase).join(' | ')} | target |
|---|${results.map(() => '---').join('|')}|---|
${row('offload (1 − origin segment bytes / bytes consumed)', (x) => `${(x.offload * 100).toFixed(1)} %`, scenario === 'steady' ? '≥ 95 %' : '')}
${row('offload, second half of the run', (x) => `${(x.steadyOffload * 100).toFixed(1)} % (limit ${(x.physicalLimit * 100).toFixed(0)} %)`)}
${row('continuity (Node viewers: segments ready before their deadline)', (x) => `${f3(x.continuity)} (${x.segmentsPlayed} segments)`, scenario === 'steady' ? '≥ 0.999' : '≥ 0.99')}
${row('stalls / stall time / rebuffer ratio', (x) => `${x.stalls} / ${x.stallS.toFixed(1)} s / ${f3(x.rebufferRatio)}`, scenario === 'steady' ? '0' : '')}
${row('startup to first frame p50 / p95', (x) => `${f2(x.startupS.p50)} / ${f2(x.startupS.p95)} s`, 'p95 ≤ 2 s')}
${row('latency behind newest segment p50 / p95', (x) => `${f2(x.latencyS.p50)} / ${f2(x.latencyS.p95)} s`, `p50 ≤ ${3 * segS} s`)}
${row('origin segment bytes / consumed', (x) => `${(x.originSegmentBytes / 1e6).toFixed(1)} / ${(x.consumedBytes / 1e6).toFixed(1)} MB`)}
${row('segments rejected by honest viewers / poisoners dropped', (x) => `${x.rejectedSegments} / ${x.poisonersDropped}`)}
${row('corrupted segments stored (played or relayable) by honest viewers', (x) => `${x.corruptedStored} of ${x.checkedStored} checked`, '0')}
${row('source: media seconds published per second (≥ 1 keeps up)', (x) => f2(x.sourceRealTime), '1.00')}
${row('tracker CPU / RSS', (x) => `${x.cpu.trackerPctOfCore.toFixed(1)} % of a core / ${x.cpu.trackerRssMB.toFixed(0)} MB`)}
${row('Node viewer CPU / RSS (each)', (x) => `${x.cpu.nodeViewerPctOfCoreEach.toFixed(1)} % / ${x.cpu.nodeViewerRssMBEach.toFixed(0)} MB`)}
${row('Chromium (all pages) CPU', (x) => (x.cpu.chromiumPctOfCore === null ? '-' : `${x.cpu.chromiumPctOfCore.toFixed(0)} % of a core`))}

Stalls count every viewer (Node: the playback model; browsers: the video element's \`waiting\` after playback started); continuity is measured by the Node viewers' playback model (browsers have no per-segment deadline; their stalls are counted above). Poisoning peers are left out of viewer figures but their downloads count in the offload.${m.browserErrors.length ? `\n\nBrowser page errors: ${m.browserErrors.slice(0, 5).join('; ')}` : ''}${m.joinErrors.length ? `\n\n${m.joinErrors.length} viewer(s) could not join: ${m.joinErrors.slice(0, 3).join('; ')}` : ''}

![offload over time](offload-over-time.svg)

![origin egress](origin-egress.svg)

![latency](latency.svg)

![stalls](stalls.svg)

![upload distribution](upload-distribution.svg)
`;
fs.writeFileSync(path.join(out, 'report.md'), md);
for (const r of results)
  console.log(
    `${r.phase}: offload ${(r.figures.offload * 100).toFixed(1)} % (second half ${(r.figures.steadyOffload * 100).toFixed(1)} %), continuity ${f3(r.figures.continuity)}, stalls ${r.figures.stalls}, startup p50/p95 ${f2(r.figures.startupS.p50)}/${f2(r.figures.startupS.p95)} s, latency p50/p95 ${f2(r.figures.latencyS.p50)}/${f2(r.figures.latencyS.p95)} s, corrupted stored ${r.figures.corruptedStored}`,
  );
console.log(`report: ${path.relative(process.cwd(), path.join(out, 'report.md'))}`);
console.log(
  `offload=${f2(m.offload)} continuity=${f3(m.continuity)} stalls=${m.stalls} startup_p95_s=${f2(m.startupS.p95)} latency_p50_s=${f2(m.latencyS.p50)} viewers=${m.viewers} scenario=${scenario}`,
);
process.exit(0);
