/**
 * `npm run bench -- --scenario NAME --viewers N --browsers K --duration SECONDS [options]`
 *
 * The swarm benchmark on the real stack, all on 127.0.0.1: a STUN server and a test-pattern source
 * (ffmpeg, signed segments, origin) in this process, the tracker in its own process (`peertv tracker`),
 * N Node viewers (the real engine and playback model over real WebRTC) in child processes, and K
 * headless Chromium viewers that open what a viewer opens: the tracker's watch page `/watch/<channel>`
 * at 1280×720 (`--page embed`: `/embed/<channel>` at 640×360; `--page bare`: a bare page with a
 * `<video>` and `PeerTV.attach`, kept for comparison), each in a browser context of its own (a cold
 * cache), with startup timed from navigation start by an init script that watches the video element.
 *
 * Scenarios: steady (default N = 30, K = 3), flash-crowd (everyone joins within 10 s), churn (20 % of
 * the Node viewers leave and as many join every --churn-interval s), poison (20 % of the Node peers
 * corrupt every chunk they upload), slow (a third of the peers capped at half the stream's bitrate),
 * http-only (P2P off). `--baseline` runs an http-only phase after the scenario in the same run.
 *
 * Reports offload (from the origin's own counters), continuity, stalls and rebuffering, startup and
 * latency percentiles, origin egress over time, peers' upload distribution, CPU and RSS; for browsers
 * also each viewer's figures, stalls by cause (the player's attribution), the busiest viewer's upload
 * against the median's, and Chromium's CPU in cores: all pages (the browser's process tree, /proc) and
 * per page (its renderer process, from the DevTools protocol). Writes
 * results/swarm-<time>/{result.json,report.md,*.svg}. The last line is the one-line summary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Browser, CDPSession } from 'playwright-core';
import {
  channelSettings,
  DEFAULT_LADDER,
  LIGHT_LADDER,
  parseLadder,
  SourceChannel,
  TrackerLink,
  type Rendition,
} from '../../source/index.ts';
import { StunServer } from '../../stun/index.ts';
import { buildPlayer } from '../../player/build/index.ts';
import {
  launchChromium,
  openPlayerPage,
  openWatchPage,
  type ViewerPage,
  type ViewerPageKind,
  type WaitEpisode,
} from '../helpers/browser.ts';
import { liveOrigin, segments, waitFor } from '../helpers/source.ts';
import { coresBusy, cpuSnapshot, findDescendant, procUsage, TreeCpu, type ProcUsage } from './lib/machine.ts';
import { fileLimits, RpcChild } from './lib/rpc.ts';
import { intFlag, parseFlags } from '../../cli/args.ts';
import { benchUsage, checkFlags, progress, progressDone, quantile, resultsDir } from './lib/stats.ts';
import {
  histogramSvg,
  isUploadDist,
  lineSvg,
  Rng,
  sample,
  UPLOAD_DISTS,
  uploadDistribution,
} from '../../sim/index.ts';
import { isPolicyName, POLICY_NAMES } from '../../tracker/index.ts';
import type { SwarmViewerCommands, ViewerFigures, ViewerRole } from './lib/swarm-viewers.ts';

const SCENARIOS = ['steady', 'flash-crowd', 'churn', 'poison', 'slow', 'http-only'] as const;
type Scenario = (typeof SCENARIOS)[number];
const PAGES: readonly ViewerPageKind[] = ['watch', 'embed', 'bare'];
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
    page: { type: 'string' },
    policy: { type: 'string' },
    'upload-dist': { type: 'string' },
  }),
);
if (flags.help) {
  console.log(`Usage: npm run bench -- [options]
  --scenario NAME        ${SCENARIOS.join(', ')} (default steady)
  --viewers N            Node viewers (default 30)
  --browsers K           headless Chromium viewers (default 3), each in a fresh browser context
  --page P[,P…]          what the browsers open: watch (/watch/<channel>, 1280×720; default), embed
                         (/embed/<channel>, 640×360) or bare (a <video> and PeerTV.attach, 640×360);
                         several: the phases once per page
  --duration S           seconds from the first join (default 120)
  --stagger-ms MS        between joins (default: steady 500, flash-crowd 10 s / N)
  --ladder SPEC | --light  the source's ladder (default: 720p/480p/360p; --light: 480p/240p)
  --rendition R          the Node viewers' rendition (default: the ladder's first)
  --segment-duration S   (default 2)
  --fps N, --preset P    the source's frame rate and x264 preset (default 30, veryfast)
  --churn-interval S     churn: seconds between waves (default 60)
  --per-process N        Node viewers per child process (default 5)
  --baseline             also run an http-only phase in the same run, for comparison
  --policy NAME          the tracker's overlay policy: ${POLICY_NAMES.join(', ')} (default random)
  --upload-dist NAME     caps each Node viewer's upload at a draw from a named distribution, in
                         multiples of the watched stream's bitrate (${Object.keys(UPLOAD_DISTS).join(', ')}; as npm run sim)`);
  process.exit(0);
}
const scenario = (flags.scenario ?? 'steady') as Scenario;
if (!SCENARIOS.includes(scenario)) usage(`--scenario must be one of ${SCENARIOS.join(', ')}`);
const int = (name: keyof typeof flags, fallback: number, min: number, max: number): number =>
  checkFlags('bench', () => intFlag(name, flags[name] as string | undefined, fallback, min, max));
const viewers = int('viewers', 30, 0, 200);
const browsers = int('browsers', 3, 0, 16);
const durationS = int('duration', 120, 10, 3600);
const segS = int('segment-duration', 2, 1, 10);
const churnIntervalS = int('churn-interval', 60, 5, 3600);
const perProcess = int('per-process', 5, 1, 100);
if (viewers + browsers === 0) usage('no viewers: give --viewers or --browsers');
const pageKinds = [...new Set((flags.page ?? 'watch').split(','))] as ViewerPageKind[];
for (const k of pageKinds)
  if (!PAGES.includes(k)) usage(`--page must be ${PAGES.join(', ')} or a list of them`);
const staggerMs = int(
  'stagger-ms',
  scenario === 'flash-crowd' ? Math.floor(10_000 / (viewers + browsers)) : 500,
  0,
  60_000,
);
let ladder: readonly Rendition[];
try {
  ladder = flags.ladder ? parseLadder(flags.ladder) : flags.light ? LIGHT_LADDER : DEFAULT_LADDER;
} catch (err) {
  usage((err as Error).message);
}
const policy = flags.policy ?? 'random';
if (!isPolicyName(policy)) usage(`--policy must be one of ${POLICY_NAMES.join(', ')}`);
const uploadDist = flags['upload-dist'];
if (uploadDist !== undefined && !isUploadDist(uploadDist))
  usage(`--upload-dist must be one of ${Object.keys(UPLOAD_DISTS).join(', ')}`);
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
/** Chromium's process tree, for its CPU time (set once the browser runs). */
let chromiumCpu: TreeCpu | undefined;
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
    '--policy',
    policy,
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
/** Bytes published so far per rendition: one copy of the stream, to count uploads in copies. */
const publishedBytes = new Map<string, number>();
channel.on('segment', (a) => {
  published.set(`${a.rendition}/${a.mediaSequence}`, a.sha256);
  publishedBytes.set(a.rendition, (publishedBytes.get(a.rendition) ?? 0) + a.byteLength);
  if (a.rendition === ladder[0]!.name) publishedCount++;
});
const { origin } = await liveOrigin(channel);
const link = new TrackerLink({ trackerUrl, channel, origin });
await waitFor(link, 'registered', 30_000);
await segments(channel, 2 * ladder.length);

// ---------------------------------------------------------------- one phase

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
  /** Chromium's CPU time since the phase began (all its processes), ms. */
  chromiumCpuMs?: number;
  /** Of which its renderer processes (the pages, and any spare renderer), ms. */
  chromiumRendererCpuMs?: number;
}

interface PhaseResult {
  name: string;
  p2p: boolean;
  /** What the browser viewers opened (null: no browsers). */
  page: ViewerPageKind | null;
  ticks: Tick[];
  nodes: ViewerFigures[];
  browsers: BrowserFigures[];
  originSegmentBytes: number;
  viewerCpu: { cpuMs: number; wallMs: number; rssMaxBytes: number }[];
  tracker: { cpuPctOfCore: number; rssMaxMB: number };
  /** Chromium's process tree (all pages, browser, GPU, network, audio), cores over the phase. */
  chromiumCores: number | null;
  /** Chromium's renderer processes (/proc, `--type=renderer`), cores over the phase. */
  rendererCores: number | null;
  /** Every process on the machine, cores busy over the phase (of os.cpus().length). */
  machineBusyCores: number;
  wallS: number;
  /** Bytes the source published per rendition during the phase: one copy of each stream. */
  streamBytes: Record<string, number>;
  corruptedStored: number;
  checkedStored: number;
  /** Media seconds the source published per wall second (< 1: the encoder fell behind live). */
  sourceRealTime: number;
  /** Viewers that could not join or viewer groups lost (counted and reported, never hidden). */
  joinErrors: string[];
}

/** When the page's first requests went out, ms from navigation start (null: no such request seen). */
interface StartupBreakdown {
  domContentLoadedMs: number | null;
  /** `/peertv.js` fully received. */
  playerScriptMs: number | null;
  channelApiMs: number | null;
  channelJsonMs: number | null;
  masterMs: number | null;
  /** The first segment fetched over HTTP (one that came from a peer leaves no resource entry). */
  firstSegmentMs: number | null;
}

interface PageCpu {
  /** CPU time of the page's renderer process, s. */
  processS: number | null;
  /** The page's renderer process (all its threads: main, hls.js worker, media, compositor), cores. */
  processCores: number | null;
  /** Its main thread's CPU, cores. */
  mainThreadCores: number | null;
  /** Main-thread tasks and script run (CPU time of the main thread), cores over the page's life. */
  taskCores: number | null;
  scriptCores: number | null;
}

interface BrowserFigures {
  index: number;
  page: ViewerPageKind;
  /** When the viewer began opening its browser context, and its page's navigation start, s after the phase began. */
  openedAtS: number;
  navigatedAtS: number | null;
  rendition: string;
  /** From navigation start to the first `playing`. */
  startupMs: number | null;
  startup: StartupBreakdown | null;
  /** From the init script's episode log (the video element's `waiting` → `playing`, seeks apart). */
  stalls: number;
  stallMs: number;
  episodes: WaitEpisode[];
  /** The player's own attribution (`stats().stallsByCause`); null when the player gives none. */
  stallsByCause: Record<string, number> | null;
  playerStallMs: number | null;
  /** Media time played (the video element's `played` ranges), s. */
  playedS: number;
  httpBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
  latencyS: number[];
  cpu: PageCpu;
  errors: string[];
}

type BrowserViewer = ViewerPage & {
  figures: BrowserFigures;
  cdp: Promise<CDPSession | undefined> | undefined;
  /** Date.now() when the page was opened and when its CDP counters started. */
  openedAtMs: number;
  cdpSinceMs: number;
};

async function openBrowserViewer(
  index: number,
  p2p: boolean,
  kind: ViewerPageKind,
  phaseT0: number,
): Promise<BrowserViewer> {
  const openedAtMs = Date.now();
  const v =
    kind === 'bare'
      ? await openPlayerPage(
          browser!,
          trackerUrl,
          {
            tracker: trackerUrl,
            channel: CHANNEL,
            loopbackOnly: true,
            p2p,
            // HTTP-only players never join the tracker: they need the origin.
            originUrl: origin.publicUrl,
          },
          { waitUntil: 'commit' },
        )
      : await openWatchPage(
          browser!,
          trackerUrl,
          CHANNEL,
          kind,
          p2p ? { candidates: 'loopback' } : { p2p: '0' },
          { waitUntil: 'commit' },
        );
  const viewer = Object.assign(v, {
    cdp: undefined as Promise<CDPSession | undefined> | undefined,
    openedAtMs,
    cdpSinceMs: NaN,
    figures: {
      index,
      page: kind,
      openedAtS: (openedAtMs - phaseT0) / 1000,
      navigatedAtS: null,
      rendition: '',
      startupMs: null,
      startup: null,
      stalls: 0,
      stallMs: 0,
      episodes: [],
      stallsByCause: null,
      playerStallMs: null,
      playedS: 0,
      httpBytes: 0,
      p2pBytes: 0,
      uploadedBytes: 0,
      latencyS: [],
      cpu: { processS: null, processCores: null, mainThreadCores: null, taskCores: null, scriptCores: null },
      errors: v.errors,
    },
  });
  // The page's own counters (its renderer's CPU): DevTools' Performance domain. Not waited for here
  // (the renderer answers once its main thread is free): the next viewer joins on time.
  viewer.cdp = v.context
    .newCDPSession(v.page)
    .then(async (c) => {
      // Durations (TaskDuration, ScriptDuration) in the main thread's CPU time, not wall time.
      await c.send('Performance.enable', { timeDomain: 'threadTicks' });
      viewer.cdpSinceMs = Date.now();
      return c;
    })
    .catch(() => undefined);
  return viewer;
}

interface BrowserSample {
  timeOrigin: number;
  startupMs: number;
  stalls: number;
  stallMs: number;
  episodes: WaitEpisode[];
  playedS: number;
  stats: {
    state: string;
    rendition: string;
    httpBytes: number;
    p2pBytes: number;
    uploadedBytes: number;
    latencyS: number | null;
    stallsByCause: Record<string, number> | null;
    stallMs: number | null;
  } | null;
  startup: StartupBreakdown | null;
}

/**
 * Evaluated in the page (a string: no bundler helpers leak into it). Reads `window.playerLog` (the
 * init script's), `window.peertv.stats()` (the page's player, whatever page it is) and, once playback
 * started, when the first requests of each kind went out (resource timing).
 */
const SAMPLE_SCRIPT = (withStartup: boolean) => `(() => {
  const l = window.playerLog;
  const p = window.peertv;
  const s = p && typeof p.stats === 'function' ? p.stats() : null;
  const v = document.querySelector('video');
  let playedS = 0;
  if (v) for (let i = 0; i < v.played.length; i++) playedS += v.played.end(i) - v.played.start(i);
  const now = performance.now();
  let startup = null;
  if (${withStartup} && l && l.startupMs >= 0) {
    const nav = performance.getEntriesByType('navigation')[0];
    startup = {
      domContentLoadedMs: nav ? nav.domContentLoadedEventEnd : null,
      playerScriptMs: null, channelApiMs: null, channelJsonMs: null, masterMs: null, firstSegmentMs: null,
    };
    for (const r of performance.getEntriesByType('resource')) {
      const n = r.name.split('?')[0];
      const k = /\\/peertv\\.js$/.test(n) ? 'playerScriptMs'
        : /\\/api\\/channels\\/[^/]+$/.test(n) ? 'channelApiMs'
        : /\\/channel\\.json$/.test(n) ? 'channelJsonMs'
        : /\\/master\\.m3u8$/.test(n) ? 'masterMs'
        : /\\/segments\\/[^/]+\\/\\d+\\.ts$/.test(n) ? 'firstSegmentMs' : '';
      if (k && startup[k] === null) startup[k] = k === 'playerScriptMs' ? r.responseEnd : r.startTime;
    }
  }
  const causes = s && s.stallsByCause && typeof s.stallsByCause === 'object' ? { ...s.stallsByCause } : null;
  return {
    timeOrigin: performance.timeOrigin,
    startupMs: l ? l.startupMs : -1,
    stalls: l ? l.stalls : 0,
    stallMs: l ? l.stallMs + (l.waitingSince >= 0 ? now - l.waitingSince : 0) : 0,
    episodes: l ? l.episodes.map((e) => ({ ...e })) : [],
    playedS,
    stats: s && {
      state: s.state, rendition: s.rendition, httpBytes: s.httpBytes, p2pBytes: s.p2pBytes,
      uploadedBytes: s.uploadedBytes, latencyS: s.latencyS, stallsByCause: causes,
      stallMs: typeof s.stallMs === 'number' ? s.stallMs : null,
    },
    startup,
  };
})()`;

async function sampleBrowser(page: BrowserViewer): Promise<void> {
  const f = page.figures;
  const s = (await page.page.evaluate(SAMPLE_SCRIPT(f.startup === null)).catch(() => undefined)) as
    BrowserSample | undefined;
  if (!s) return;
  f.navigatedAtS = (s.timeOrigin - page.openedAtMs) / 1000 + f.openedAtS;
  f.startupMs = s.startupMs >= 0 ? s.startupMs : null;
  f.startup ??= s.startup;
  f.stalls = s.stalls;
  f.stallMs = s.stallMs;
  f.episodes = s.episodes;
  f.playedS = s.playedS;
  if (!s.stats) return;
  f.rendition = s.stats.rendition;
  f.httpBytes = s.stats.httpBytes;
  f.p2pBytes = s.stats.p2pBytes;
  f.uploadedBytes = s.stats.uploadedBytes;
  f.stallsByCause = s.stats.stallsByCause;
  f.playerStallMs = s.stats.stallMs;
  if (s.stats.state === 'playing' && typeof s.stats.latencyS === 'number') f.latencyS.push(s.stats.latencyS);
}

/** The page's CPU over its life, from its renderer's counters (DevTools `Performance.getMetrics`). */
async function measurePageCpu(page: BrowserViewer): Promise<void> {
  const res = await (await page.cdp)?.send('Performance.getMetrics').catch(() => undefined);
  if (!res) return;
  const m = new Map(res.metrics.map((x) => [x.name, x.value]));
  const now = Date.now();
  // ProcessTime and ThreadTime count from the renderer's start (made for this page: a new context);
  // TaskDuration and ScriptDuration from Performance.enable.
  const lifeS = (now - page.openedAtMs) / 1000;
  const sinceS = (now - page.cdpSinceMs) / 1000;
  const per = (name: string, s: number) => {
    const v = m.get(name);
    return v === undefined || !(s > 0) ? null : v / s;
  };
  page.figures.cpu = {
    processS: m.get('ProcessTime') ?? null,
    processCores: per('ProcessTime', lifeS),
    mainThreadCores: per('ThreadTime', lifeS),
    taskCores: per('TaskDuration', sinceS),
    scriptCores: per('ScriptDuration', sinceS),
  };
}

async function runPhase(name: string, p2p: boolean, kind: ViewerPageKind): Promise<PhaseResult> {
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
  if (browsers > 0 && !browser) {
    browser = await launchChromium();
    const pid = findDescendant(process.pid, /^chrom/);
    chromiumCpu = pid ? new TreeCpu(pid) : undefined;
  }
  const pages: BrowserViewer[] = [];
  const originBase = origin.counters()[CHANNEL]!.segment.bytes;
  const publishedAtStart = publishedCount;
  const bytesAtStart = new Map(publishedBytes);
  const t0 = Date.now();
  const ticks: Tick[] = [];
  const trackerPid = trackerProc.pid!;
  const trackerStart = procUsage(trackerPid);
  const chromiumStart = chromiumCpu?.sample();
  const renderersStart = chromiumCpu?.totalMs('renderer');
  const machineStart = cpuSnapshot();
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
  // Uplinks from the named distribution: one seeded draw per Node viewer, the same in every phase.
  const uploadRng = new Rng(1);
  const drawCap = () =>
    uploadDist ? Math.max(50, Math.round(sample(uploadDistribution(uploadDist, streamKbps), uploadRng))) : 0;
  const uploadCaps = Array.from({ length: viewers }, drawCap);
  const joinErrors: string[] = [];

  const opening: Promise<void>[] = [];
  const joins = async () => {
    const total = viewers + browsers;
    for (let i = 0, node = 0, b = 0; i < total; i++) {
      // Browsers spread evenly among the Node viewers.
      const browserTurn = b < browsers && (node >= viewers || (i + 1) * browsers >= (b + 1) * total);
      if (browserTurn) {
        // Not waited for: opening a context and its window can take longer than the stagger on a
        // loaded machine, and viewers arrive on schedule anyway.
        const index = b++;
        opening.push(
          openBrowserViewer(index, p2p, kind, t0).then(
            (page) => void pages.push(page),
            (err: Error) => void joinErrors.push(`browser ${index}: ${err.message.split('\n')[0]}`),
          ),
        );
      } else {
        const role = roles[node]!;
        phaseRpcs[node % groups]!.call('join', {
          count: 1,
          staggerMs: 0,
          role,
          uploadCapKbps: role === 'slow' ? slowCapKbps : uploadCaps[node]!,
          p2p,
        }).catch((err: Error) => joinErrors.push(err.message.split('\n')[0]!));
        node++;
      }
      if (i < total - 1) await new Promise((r) => setTimeout(r, staggerMs));
    }
    await Promise.all(opening);
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
        const failed = (err: Error) => joinErrors.push(err.message.split('\n')[0]!);
        if (!uploadDist)
          rpc
            .call('join', { count: left, staggerMs: 200, role: 'honest', uploadCapKbps: 0, p2p })
            .catch(failed);
        // Each newcomer with an uplink of its own draw, 200 ms apart.
        else
          for (let k = 0; k < left; k++) {
            const uploadCapKbps = drawCap();
            setTimeout(() => {
              rpc.call('join', { count: 1, staggerMs: 0, role: 'honest', uploadCapKbps, p2p }).catch(failed);
            }, 200 * k);
          }
      }
    }
    const samples = await Promise.all(
      phaseRpcs.map((r) => r.call('sample', {}, 10_000).catch(() => undefined)),
    );
    await Promise.all(pages.map(sampleBrowser));
    const tracker = procUsage(trackerPid);
    trackerRssMax = Math.max(trackerRssMax, tracker?.rssBytes ?? 0);
    const chromiumNow = chromiumCpu?.sample();
    const renderersNow = chromiumCpu?.totalMs('renderer');
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
      ...(chromiumNow !== undefined &&
        chromiumStart !== undefined && {
          chromiumCpuMs: chromiumNow - chromiumStart,
          chromiumRendererCpuMs: renderersNow! - renderersStart!,
        }),
    };
    const prev = ticks.at(-1);
    ticks.push(tick);
    const off =
      tick.consumedBytes > 0 ? `${((1 - tick.originBytes / tick.consumedBytes) * 100).toFixed(1)} %` : '-';
    const chromiumNowCores =
      prev?.chromiumCpuMs !== undefined && tick.chromiumCpuMs !== undefined
        ? `, Chromium ${((tick.chromiumCpuMs - prev.chromiumCpuMs) / 1000 / (tick.atS - prev.atS)).toFixed(2)} cores`
        : '';
    progress(
      `${name}: ${Math.round(atS)}/${durationS} s, ${tick.nodeViewers} node + ${pages.length} browser viewers, offload ${off}, stalls ${tick.stalls}${chromiumNowCores}${churnWaves ? `, churn waves ${churnWaves}` : ''}`,
    );
  }
  await joining;
  await Promise.all(pages.map(sampleBrowser));
  await Promise.all(pages.map(measurePageCpu));
  pages.sort((x, y) => x.figures.index - y.figures.index);
  const chromiumEnd = chromiumCpu?.sample();
  const renderersEnd = chromiumCpu?.totalMs('renderer');
  const machineEnd = cpuSnapshot();
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
  const wallS = (Date.now() - t0) / 1000;
  const sourceRealTime = ((publishedCount - publishedAtStart) * segS) / wallS;
  const streamBytes = Object.fromEntries(
    [...publishedBytes].map(([r, bytes]) => [r, bytes - (bytesAtStart.get(r) ?? 0)]),
  );
  for (const p of pages) await p.context.close();
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
    page: browsers > 0 ? kind : null,
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
    chromiumCores:
      chromiumStart !== undefined && chromiumEnd !== undefined
        ? (chromiumEnd - chromiumStart) / (wallS * 1000)
        : null,
    rendererCores:
      renderersStart !== undefined && renderersEnd !== undefined
        ? (renderersEnd - renderersStart) / (wallS * 1000)
        : null,
    machineBusyCores: coresBusy(machineStart, machineEnd),
    wallS,
    streamBytes,
    corruptedStored: corrupted,
    checkedStored: checked,
    joinErrors,
    sourceRealTime,
  };
}

// ---------------------------------------------------------------- run and report

const phases: PhaseResult[] = [];
try {
  // Browsers: the phases once per page kind; without browsers the page does not matter.
  for (const kind of browsers > 0 ? pageKinds : pageKinds.slice(0, 1)) {
    const label = (phase: string) => (browsers > 0 && pageKinds.length > 1 ? `${phase} (${kind})` : phase);
    phases.push(await runPhase(label(scenario), scenario !== 'http-only', kind));
    if (flags.baseline && scenario !== 'http-only')
      phases.push(await runPhase(label('http-only'), false, kind));
  }
} finally {
  progressDone();
  await cleanup();
  link.destroy();
  await channel.destroy();
  await origin.destroy();
  await stun.destroy();
  fs.rmSync(dataDir, { recursive: true, force: true });
}

const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');
const nums = (xs: readonly (number | null)[]) =>
  xs.flatMap((x) => (x === null || !Number.isFinite(x) ? [] : [x]));
const p50p95 = (xs: readonly (number | null)[]) => {
  const v = nums(xs);
  return { p50: quantile(v, 0.5), p95: quantile(v, 0.95), max: v.length ? Math.max(...v) : NaN, n: v.length };
};

/** A viewer's upload: bytes, and copies of its stream (the bytes the source published during the phase). */
interface Upload {
  who: string;
  bytes: number;
  copies: number;
}

/** The busiest uploader and the median one (by bytes) among `ups`. */
function busiestAndMedian(ups: Upload[]): { busiest: Upload | null; median: Upload | null } {
  const sorted = [...ups].sort((a, b) => a.bytes - b.bytes);
  return { busiest: sorted.at(-1) ?? null, median: sorted[Math.floor((sorted.length - 1) / 2)] ?? null };
}

/**
 * Stalls by cause over the browsers: the player's attribution (`stats().stallsByCause`) where it gives
 * one; stalls the init script counted beyond the player's attributed ones are `unknown`.
 */
function stallCauses(bs: readonly BrowserFigures[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of bs) {
    let attributed = 0;
    for (const [cause, n] of Object.entries(b.stallsByCause ?? {}))
      if (n > 0) {
        out[cause] = (out[cause] ?? 0) + n;
        attributed += n;
      }
    if (b.stalls > attributed) out.unknown = (out.unknown ?? 0) + b.stalls - attributed;
  }
  return out;
}
const causesText = (c: Record<string, number>) =>
  Object.keys(c).length
    ? Object.entries(c)
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')
    : 'none';

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
  const copies = (bytes: number, r: string) => bytes / (ph.streamBytes[r || rendition] ?? NaN);
  const nodeUploads = ph.nodes.map((v) => ({
    who: `node ${v.index}`,
    bytes: v.uploadedBytes,
    copies: copies(v.uploadedBytes, v.rendition),
  }));
  const browserUploads = ph.browsers.map((b) => ({
    who: `browser ${b.index}`,
    bytes: b.uploadedBytes,
    copies: copies(b.uploadedBytes, b.rendition),
  }));
  const bs = ph.browsers;
  // Chromium in its second half (steady state), from the ticks.
  const chromiumSecondHalf =
    mid?.chromiumCpuMs !== undefined && last?.chromiumCpuMs !== undefined && last.atS > mid.atS
      ? (last.chromiumCpuMs - mid.chromiumCpuMs) / 1000 / (last.atS - mid.atS)
      : NaN;
  const pageProcess = nums(bs.map((b) => b.cpu.processCores));
  const pagesCores =
    bs.length > 0 && bs.every((b) => b.cpu.processS !== null)
      ? bs.reduce((s, b) => s + b.cpu.processS!, 0) / ph.wallS
      : NaN;
  const chromiumCores = ph.chromiumCores ?? NaN;
  const startupPart = (k: keyof StartupBreakdown) =>
    quantile(nums(bs.map((b) => b.startup?.[k] ?? null)), 0.5) / 1000;
  const browserFigures = {
    page: ph.page,
    /** From navigation start, s. */
    startupS: p50p95(bs.map((b) => (b.startupMs === null ? null : b.startupMs / 1000))),
    /** Medians over the browsers, s from navigation start. */
    startupBreakdownS: {
      domContentLoaded: startupPart('domContentLoadedMs'),
      playerScript: startupPart('playerScriptMs'),
      channelApi: startupPart('channelApiMs'),
      channelJson: startupPart('channelJsonMs'),
      master: startupPart('masterMs'),
      firstSegment: startupPart('firstSegmentMs'),
    },
    stalls: bs.reduce((s, b) => s + b.stalls, 0),
    stallS: bs.reduce((s, b) => s + b.stallMs, 0) / 1000,
    stalledViewers: bs.filter((b) => b.stalls > 0).length,
    /** Stalls that lasted less than 100 ms (a `waiting` the element got over at once). */
    shortStalls: bs.reduce(
      (s, b) => s + b.episodes.filter((e) => !e.seek && e.endMs >= 0 && e.endMs - e.atMs < 100).length,
      0,
    ),
    stallsByCause: stallCauses(bs),
    /** Whether the player attributes stalls at all (`stats().stallsByCause`). */
    causesFromPlayer: bs.some((b) => b.stallsByCause !== null),
    latencyS: p50p95(bs.flatMap((b) => b.latencyS)),
    upload: busiestAndMedian(browserUploads),
    cpu: {
      /** Chromium's whole process tree (all pages, browser, GPU, network, audio), cores. */
      chromiumCores,
      chromiumCoresSecondHalf: chromiumSecondHalf,
      /** Each page's renderer process over the page's life, cores. */
      pageProcessCores: p50p95(pageProcess),
      pageMainThreadCores: p50p95(bs.map((b) => b.cpu.mainThreadCores)),
      pageScriptCores: p50p95(bs.map((b) => b.cpu.scriptCores)),
      /** The pages' renderer processes together, cores over the phase. */
      pagesCores: pagesCores,
      /**
       * Chromium's other renderer processes (/proc `--type=renderer` minus the pages'): each context's
       * window brings a renderer of Chromium's own UI (`--top-chrome-webui`), and spare renderers.
       */
      otherRendererCores: (ph.rendererCores ?? NaN) - pagesCores,
      /** Chromium's processes other than renderers (browser, GPU and compositing, network, audio). */
      sharedCores: chromiumCores - (ph.rendererCores ?? NaN),
    },
  };
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
    // Node viewers: starting the engine (tracker, channel, playlist), and each segment's load time.
    joinS: p50p95(honest.map((v) => (v.joinMs === null ? null : v.joinMs / 1000))),
    segmentMs: {
      http: p50p95(honest.flatMap((v) => v.httpSegmentMs)),
      p2p: p50p95(honest.flatMap((v) => v.p2pSegmentMs)),
    },
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
      chromiumCores: ph.chromiumCores,
      machineBusyCores: ph.machineBusyCores,
    },
    uploadedMB: [...ph.nodes.map((v) => v.uploadedBytes), ...ph.browsers.map((b) => b.uploadedBytes)].map(
      (b) => b / 1e6,
    ),
    /** Every viewer's upload (Node and browsers): the busiest against the median. */
    upload: busiestAndMedian([...nodeUploads, ...browserUploads]),
    browser: browserFigures,
  };
}

const results = phases.map((ph) => ({
  phase: ph.name,
  p2p: ph.p2p,
  page: ph.page,
  figures: figures(ph),
  ticks: ph.ticks,
  nodes: ph.nodes,
  browsers: ph.browsers,
}));
const main = results[0]!;
const m = main.figures;
const PAGE_LABEL: Record<ViewerPageKind, string> = {
  watch: 'watch page (/watch/<channel>, 1280×720)',
  embed: 'embed page (/embed/<channel>, 640×360)',
  bare: 'bare attach page (<video> + PeerTV.attach, 640×360)',
};
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
      pages: browsers > 0 ? pageKinds : [],
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
const withChromium = results.filter((r) => r.ticks.some((t) => t.chromiumCpuMs !== undefined));
if (withChromium.length > 0)
  fs.writeFileSync(
    path.join(out, 'chromium-cpu.svg'),
    lineSvg({
      title: 'Chromium CPU, all pages (5 s average)',
      xLabel: 's',
      yLabel: 'cores',
      series: withChromium.map((r) => ({
        label: r.phase,
        points: windowed(
          r.ticks.filter((t) => t.chromiumCpuMs !== undefined),
          (a, b) => (b.chromiumCpuMs! - a.chromiumCpuMs!) / 1000 / (b.atS - a.atS),
          5,
        ),
      })),
    }),
  );

type Figures = ReturnType<typeof figures>;
const row = (label: string, f: (x: Figures) => string, target = '') =>
  `| ${label} | ${results.map((r) => f(r.figures)).join(' | ')} | ${target} |`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const uploadText = (u: Upload | null) => (u ? `${mb(u.bytes)} (${f2(u.copies)} copies, ${u.who})` : '-');
const cores = (x: number | null) => (x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}`);
const hasBrowsers = browsers > 0;
const b = (x: Figures) => x.browser;
const browserRows = hasBrowsers
  ? `
${row('**browsers**: page', (x) => (b(x).page ? `${b(x).page}` : '-'))}
${row('startup from navigation start p50 / p95', (x) => `${f2(b(x).startupS.p50)} / ${f2(b(x).startupS.p95)} s`, 'p50 ≤ 1.2 × http-only; p95 ≤ 2 s')}
${row('startup steps (median, from navigation start): peertv.js loaded · DOMContentLoaded · /api/channels · channel.json · master playlist · first segment over HTTP', (x) => ['playerScript', 'domContentLoaded', 'channelApi', 'channelJson', 'master', 'firstSegment'].map((k) => f2(b(x).startupBreakdownS[k as keyof Figures['browser']['startupBreakdownS']])).join(' · ') + ' s')}
${row('stalls / stall time (browsers that stalled; stalls under 0.1 s)', (x) => `${b(x).stalls} / ${b(x).stallS.toFixed(1)} s (${b(x).stalledViewers} of ${x.browserViewers}; ${b(x).shortStalls} under 0.1 s)`, '0 where http-only has 0')}
${row('stalls by cause (the player’s attribution)', (x) => `${causesText(b(x).stallsByCause)}${b(x).causesFromPlayer ? '' : ' (the player attributes none)'}`, 'none from p2p')}
${row('latency behind live p50 / p95 (player)', (x) => `${f2(b(x).latencyS.p50)} / ${f2(b(x).latencyS.p95)} s`, `p50 ≤ ${3 * segS} s`)}
${row('upload: busiest / median browser', (x) => `${uploadText(b(x).upload.busiest)} / ${uploadText(b(x).upload.median)}`)}
${row('**Chromium CPU, all pages** (its process tree; second half)', (x) => `**${cores(b(x).cpu.chromiumCores)} cores** (${cores(b(x).cpu.chromiumCoresSecondHalf)})`, 'within 0.2 core of http-only')}
${row('Chromium CPU per page: renderer process p50 / max', (x) => `${cores(b(x).cpu.pageProcessCores.p50)} / ${cores(b(x).cpu.pageProcessCores.max)} cores`)}
${row('per page: main thread / script p50', (x) => `${cores(b(x).cpu.pageMainThreadCores.p50)} / ${cores(b(x).cpu.pageScriptCores.p50)} cores`)}
${row('Chromium split: the pages’ renderers / its other renderers (its own UI per window, spares) / its other processes (browser, GPU and compositing, network, audio)', (x) => `${cores(b(x).cpu.pagesCores)} / ${cores(b(x).cpu.otherRendererCores)} / ${cores(b(x).cpu.sharedCores)} cores`)}`
  : '';

function viewerTable(r: (typeof results)[number]): string {
  if (r.browsers.length === 0) return '';
  const streamBytes = (bf: BrowserFigures) => {
    const ph = phases.find((p) => p.name === r.phase)!;
    return ph.streamBytes[bf.rendition || rendition] ?? NaN;
  };
  const lines = r.browsers.map((bf) => {
    const lat = quantile(bf.latencyS, 0.5);
    const total = bf.httpBytes + bf.p2pBytes;
    const st = bf.startup;
    const ms = (x: number | null | undefined) =>
      x === null || x === undefined ? '-' : (x / 1000).toFixed(2);
    return `| ${bf.index} | ${bf.navigatedAtS === null ? '-' : bf.navigatedAtS.toFixed(1)} s | ${bf.rendition || '-'} | ${ms(bf.startupMs)} s | ${ms(st?.domContentLoadedMs)} · ${ms(st?.channelJsonMs)} · ${ms(st?.firstSegmentMs)} s | ${bf.stalls} (${(bf.stallMs / 1000).toFixed(1)} s) | ${bf.stallsByCause ? causesText(bf.stallsByCause) : 'unknown'} | ${f2(lat)} s | ${total > 0 ? ((bf.p2pBytes / total) * 100).toFixed(0) : '-'} % | ${mb(bf.uploadedBytes)} (${f2(bf.uploadedBytes / streamBytes(bf))}) | ${cores(bf.cpu.processCores)} / ${cores(bf.cpu.mainThreadCores)} | ${bf.errors.length} |`;
  });
  return `
### Browser viewers: ${r.phase}${r.page ? ` (${PAGE_LABEL[r.page]})` : ''}

| viewer | navigation start | rendition | startup | DOMContentLoaded · channel.json · first segment | stalls (time) | causes (player) | latency p50 | from peers | uploaded (stream copies) | CPU cores: renderer / main thread | page errors |
|---:|---:|---|---:|---|---|---|---:|---:|---|---|---:|
${lines.join('\n')}
`;
}

const header = results.map((r) => (r.page && hasBrowsers ? `${r.phase} · ${r.page}` : r.phase));
const pagesText = hasBrowsers
  ? ` Each Chromium viewer opens the ${[...new Set(results.map((r) => r.page).filter((x) => x !== null))].map((k) => PAGE_LABEL[k]).join(', then the ')} in a browser context of its own (a cold cache; camera and microphone granted so loopback candidates are listed; P2P phases add \`?candidates=loopback\`, the http-only phase \`?p2p=0\`), and its startup is timed from navigation start to the video element's first \`playing\`.`
  : '';
const md = `# Swarm benchmark: ${scenario} (${startedAt.toISOString()})

${viewers} Node viewers (${rendition}) and ${browsers} Chromium viewers (hls.js, automatic rendition), joining ${staggerMs} ms apart, ${durationS} s; ladder ${ladder.map((r) => r.name).join('/')} at ${settings.fps} fps (x264 ${settings.x264Preset}), ${segS} s segments; tracker, STUN and source on this ${os.cpus().length}-core machine, all on 127.0.0.1.${pagesText}${scenario === 'poison' ? ` ${m.poisoners} Node peers upload corrupted chunks (one byte flipped per chunk).` : ''}${scenario === 'slow' ? ` A third of the peers are capped at ${Math.max(50, Math.round(streamKbps / 2))} kbit/s upload (half the stream).` : ''}${scenario === 'churn' ? ` Every ${churnIntervalS} s, 20 % of the Node viewers leave and as many join.` : ''}${uploadDist ? ` Node viewers' upload capped at draws from the ${uploadDist} distribution, in multiples of the ${streamKbps} kbit/s stream.` : ''} Tracker policy: ${policy}.

| figure | ${header.join(' | ')} | target |
|---|${results.map(() => '---').join('|')}|---|
${row('offload (1 − origin segment bytes / bytes consumed)', (x) => `${(x.offload * 100).toFixed(1)} %`, scenario === 'steady' ? (viewers === 0 ? '≥ 75 % (6 browsers)' : '≥ 95 %') : '')}
${row('offload, second half of the run', (x) => `${(x.steadyOffload * 100).toFixed(1)} % (limit ${(x.physicalLimit * 100).toFixed(0)} %)`)}
${row('continuity (Node viewers: segments ready before their deadline)', (x) => `${f3(x.continuity)} (${x.segmentsPlayed} segments)`, scenario === 'steady' ? '≥ 0.999' : '≥ 0.99')}
${row('stalls / stall time / rebuffer ratio (all viewers)', (x) => `${x.stalls} / ${x.stallS.toFixed(1)} s / ${f3(x.rebufferRatio)}`, scenario === 'steady' ? '0' : '')}
${row('startup to first frame p50 / p95 (all viewers)', (x) => `${f2(x.startupS.p50)} / ${f2(x.startupS.p95)} s`, 'p95 ≤ 2 s')}
${row('latency behind newest segment p50 / p95', (x) => `${f2(x.latencyS.p50)} / ${f2(x.latencyS.p95)} s`, `p50 ≤ ${3 * segS} s`)}
${row('Node viewers: engine start (tracker, channel, playlist) p50 / p95', (x) => `${f2(x.joinS.p50)} / ${f2(x.joinS.p95)} s`, '')}
${row('Node viewers: segment load HTTP / P2P p50 (p95)', (x) => `${x.segmentMs.http.p50.toFixed(0)} (${x.segmentMs.http.p95.toFixed(0)}) / ${x.segmentMs.p2p.p50.toFixed(0)} (${x.segmentMs.p2p.p95.toFixed(0)}) ms`, '')}
${row('origin segment bytes / consumed', (x) => `${(x.originSegmentBytes / 1e6).toFixed(1)} / ${(x.consumedBytes / 1e6).toFixed(1)} MB`)}
${row('upload: busiest / median viewer (stream copies)', (x) => `${uploadText(x.upload.busiest)} / ${uploadText(x.upload.median)}`)}${browserRows}
${row('segments rejected by honest viewers / poisoners dropped', (x) => `${x.rejectedSegments} / ${x.poisonersDropped}`)}
${row('corrupted segments stored (played or relayable) by honest viewers', (x) => `${x.corruptedStored} of ${x.checkedStored} checked`, '0')}
${row('source: media seconds published per second (≥ 1 keeps up)', (x) => f2(x.sourceRealTime), '1.00')}
${row('tracker CPU / RSS', (x) => `${x.cpu.trackerPctOfCore.toFixed(1)} % of a core / ${x.cpu.trackerRssMB.toFixed(0)} MB`)}
${row('Node viewer CPU / RSS (each)', (x) => (x.nodeViewers ? `${x.cpu.nodeViewerPctOfCoreEach.toFixed(1)} % / ${x.cpu.nodeViewerRssMBEach.toFixed(0)} MB` : '-'))}
${row(`machine busy (cores of ${os.cpus().length}, everything running)`, (x) => cores(x.cpu.machineBusyCores))}

Stalls count every viewer (Node: the playback model; browsers: the video element's \`waiting\` after playback started, seeks apart, from an init script independent of the page's code); continuity is measured by the Node viewers' playback model (browsers have no per-segment deadline; their stalls are counted above). Stall causes are the player's own (\`window.peertv.stats().stallsByCause\`); stalls it does not attribute are \`unknown\`. Browser latency is the player's \`stats().latencyS\` (hls.js: seconds behind the live edge), sampled every second while playing. Chromium's CPU is its whole process tree from /proc (all pages, browser, GPU and compositing, network, audio) over the phase; a page's is its renderer process's (DevTools \`Performance.getMetrics\` ProcessTime: main thread, the hls.js worker, media and compositor threads) over the page's life; besides the pages' renderers Chromium runs, per browser context, a renderer for its own UI (\`--top-chrome-webui\`) and sometimes a spare renderer, counted apart. Upload copies: bytes uploaded / bytes the source published of that viewer's rendition during the phase. Poisoning peers are left out of viewer figures but their downloads count in the offload.${m.browserErrors.length ? `\n\nBrowser page errors: ${m.browserErrors.slice(0, 5).join('; ')}` : ''}${m.joinErrors.length ? `\n\n${m.joinErrors.length} viewer(s) could not join: ${m.joinErrors.slice(0, 3).join('; ')}` : ''}
${results.map(viewerTable).join('')}
![offload over time](offload-over-time.svg)

![origin egress](origin-egress.svg)

![latency](latency.svg)

![stalls](stalls.svg)

![upload distribution](upload-distribution.svg)
${withChromium.length > 0 ? '\n![Chromium CPU](chromium-cpu.svg)\n' : ''}`;
fs.writeFileSync(path.join(out, 'report.md'), md);
for (const r of results) {
  const x = r.figures;
  const br = x.browser;
  console.log(
    `${r.phase}: offload ${(x.offload * 100).toFixed(1)} % (second half ${(x.steadyOffload * 100).toFixed(1)} %), continuity ${f3(x.continuity)}, stalls ${x.stalls}, startup p50/p95 ${f2(x.startupS.p50)}/${f2(x.startupS.p95)} s, latency p50/p95 ${f2(x.latencyS.p50)}/${f2(x.latencyS.p95)} s, corrupted stored ${x.corruptedStored}`,
  );
  if (x.browserViewers > 0)
    console.log(
      `  ${x.browserViewers} browsers (${r.page} page): startup from navigation start p50/p95 ${f2(br.startupS.p50)}/${f2(br.startupS.p95)} s, stalls ${br.stalls} (${br.stallS.toFixed(1)} s; ${causesText(br.stallsByCause)}), latency p50 ${f2(br.latencyS.p50)} s, upload busiest/median ${uploadText(br.upload.busiest)} / ${uploadText(br.upload.median)}, Chromium ${cores(br.cpu.chromiumCores)} cores (per page p50 ${cores(br.cpu.pageProcessCores.p50)}), machine ${cores(x.cpu.machineBusyCores)} of ${os.cpus().length} cores busy`,
    );
}
console.log(`report: ${path.relative(process.cwd(), path.join(out, 'report.md'))}`);
console.log(
  `offload=${f2(m.offload)} continuity=${f3(m.continuity)} stalls=${m.stalls} startup_p95_s=${f2(m.startupS.p95)} latency_p50_s=${f2(m.latencyS.p50)} viewers=${m.viewers} scenario=${scenario}`,
);
process.exit(0);
