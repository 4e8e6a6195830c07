/**
 * `npm run bench:page [-- --duration 20 --cases watch,embed --before DIR]`: where a viewer's page spends
 * CPU, from Chromium's DevTools protocol while a real stream plays.
 *
 * A test-pattern source (one 640×360 rendition by default, like the issue's stream), a tracker serving
 * the built player and a few Node viewers (real engine over WebRTC on loopback, so a page with P2P on
 * has peers) run in this process. Each case opens one page in a fresh Chromium (cold cache, its own
 * processes) at 1280×800: the watch page (`/watch/<ch>`), the same with its stats panel open, or the
 * embed page in a 640×360 iframe, with P2P on or off (`?p2p=0`; `?candidates=loopback` always).
 * Once it plays and a warm-up passed, for `--duration` seconds:
 *   - CPU: every Chromium process and thread from /proc (the page's cost: one page per browser);
 *   - `Profiler` on the page's main thread, each sample attributed through the bundles' source maps to
 *     the innermost frame that belongs to the page UI (`player/src/app/*`, `app.js`), the P2P engine
 *     (`peer/*`, `protocol/*`, the player integration `player/src/{api,loader}.ts` and the libraries
 *     they bring: simple-peer, socket.io-client, …) or hls.js; the rest of the main thread (style,
 *     layout, paint, GC, parsing) is the browser's;
 *   - `Performance.getMetrics`: layout and style recalculation time and counts.
 * The split: UI and engine = the main thread's CPU × their share of its busy samples; hls.js = the same
 * plus its transmuxing worker's thread; other = everything else Chromium did for the page (rendering,
 * compositing, video decoding, the GPU and browser processes, the network service).
 *
 * `--before DIR` also runs every case against another build of the player (e.g. the previous commit's
 * `player/dist`, built elsewhere), back to back with this one, so both see the same machine.
 * Writes results/page-profile-<time>/{result.json,report.md,<case>.cpuprofile}; prints the table.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, CDPSession, Frame, Page } from 'playwright-core';
import {
  channelSettings,
  parseLadder,
  SourceChannel,
  TrackerLink,
  type Rendition,
} from '../../source/index.ts';
import { Tracker } from '../../tracker/index.ts';
import { startNodePeer, type NodePeer } from '../../peer/node/index.ts';
import { buildPlayer } from '../../player/build/index.ts';
import { launchChromium } from '../helpers/browser.ts';
import { liveOrigin, segments, waitFor } from '../helpers/source.ts';
import { findDescendant, statCpuMs } from './lib/machine.ts';
import { intFlag, parseFlags } from '../../cli/args.ts';
import { benchUsage, checkFlags, progress, progressDone, resultsDir } from './lib/stats.ts';
import { attribute, Bundle, type Category, type CpuProfile } from './lib/cpu-profile.ts';

const BENCH = 'bench:page';
const root = path.resolve(import.meta.dirname, '../..');
const CASES = {
  watch: { page: 'watch', p2p: true, statsOpen: false, label: 'watch, P2P on' },
  'watch-stats': { page: 'watch', p2p: true, statsOpen: true, label: 'watch + stats panel, P2P on' },
  embed: { page: 'embed', p2p: true, statsOpen: false, label: 'embed, P2P on' },
  'watch-http': { page: 'watch', p2p: false, statsOpen: false, label: 'watch, P2P off' },
  'embed-http': { page: 'embed', p2p: false, statsOpen: false, label: 'embed, P2P off' },
} as const;
type CaseId = keyof typeof CASES;
const CASE_IDS = Object.keys(CASES) as CaseId[];

const { values: flags } = checkFlags(BENCH, () =>
  parseFlags(process.argv.slice(2), {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    cases: { type: 'string' },
    peers: { type: 'string' },
    ladder: { type: 'string' },
    fps: { type: 'string' },
    'segment-duration': { type: 'string' },
    'interval-us': { type: 'string' },
    before: { type: 'string' },
    'before-label': { type: 'string' },
    label: { type: 'string' },
  }),
);
if (flags.help) {
  console.log(`Usage: npm run bench:page -- [options]
  --duration S         seconds measured per case (default 20)
  --warmup S           seconds of playback before measuring (default 8)
  --cases LIST         of ${CASE_IDS.join(', ')} (default all)
  --peers N            Node viewers in the swarm (default 2)
  --ladder SPEC        the source's ladder (default 360p:640x360:600:64)
  --fps N              the source's frame rate (default 25)
  --segment-duration S (default 2)
  --interval-us N      the profiler's sampling interval (default 1000)
  --before DIR         also run each case against this player build (a player/dist folder)
  --before-label L, --label L   names of the two builds in the report (default before, after)`);
  process.exit(0);
}
const int = (name: keyof typeof flags, fallback: number, min: number, max: number): number =>
  checkFlags(BENCH, () => intFlag(name, flags[name] as string | undefined, fallback, min, max));
const durationS = int('duration', 20, 3, 600);
const warmupS = int('warmup', 8, 0, 600);
const peerCount = int('peers', 2, 0, 10);
const fps = int('fps', 25, 1, 60);
const segS = int('segment-duration', 2, 1, 10);
const intervalUs = int('interval-us', 1000, 50, 100_000);
const caseIds = (flags.cases?.split(',').map((s) => s.trim()) ?? CASE_IDS) as CaseId[];
for (const c of caseIds)
  if (!(c in CASES)) benchUsage(BENCH, `--cases: unknown case "${c}" (one of ${CASE_IDS.join(', ')})`);
let ladder: Rendition[];
try {
  ladder = parseLadder(flags.ladder ?? '360p:640x360:600:64');
} catch (err) {
  benchUsage(BENCH, (err as Error).message);
}
const beforeDir = flags.before ? path.resolve(flags.before) : undefined;
if (beforeDir && !fs.existsSync(path.join(beforeDir, 'peertv.js')))
  benchUsage(BENCH, `--before: no peertv.js in ${beforeDir}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- Chromium's processes and threads

interface ThreadCpu {
  /** `browser`, `renderer`, `gpu-process`, `utility`, `zygote`, … */
  type: string;
  main: boolean;
  name: string;
  cpuMs: number;
}

function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      parentOf.set(Number(name), Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parentOf)
      if (pp === p) {
        out.push(child);
        walk(child);
      }
  };
  walk(pid);
  return out;
}

/** CPU time of every thread of a browser and its descendants, keyed by pid/tid. */
function threadSnapshot(browserPid: number): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  for (const pid of [browserPid, ...descendants(browserPid)]) {
    let cmd: string;
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const type = /--type=([a-z-]+)/.exec(cmd)?.[1] ?? 'browser';
    let tids: string[];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const cpuMs = statCpuMs(`/proc/${pid}/task/${tid}/stat`);
      if (cpuMs === undefined) continue;
      let name = '';
      try {
        name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      } catch {
        /* gone */
      }
      out.set(`${pid}/${tid}`, { type, main: String(pid) === tid, name, cpuMs });
    }
  }
  return out;
}

interface CpuSplit {
  /** Cores (CPU seconds per second) over the window. */
  total: number;
  rendererMain: number;
  /** Dedicated workers (hls.js's transmuxer). */
  workers: number;
  rendererOther: number;
  gpu: number;
  browser: number;
  utility: number;
  /** Renderer threads other than main and workers, by name (cores), busiest first. */
  threads: [string, number][];
}

function cpuSplit(a: Map<string, ThreadCpu>, b: Map<string, ThreadCpu>, wallMs: number): CpuSplit {
  const s: CpuSplit = {
    total: 0,
    rendererMain: 0,
    workers: 0,
    rendererOther: 0,
    gpu: 0,
    browser: 0,
    utility: 0,
    threads: [],
  };
  const names = new Map<string, number>();
  for (const [key, t] of b) {
    const cores = (t.cpuMs - (a.get(key)?.cpuMs ?? 0)) / wallMs;
    s.total += cores;
    if (t.type === 'renderer') {
      if (t.main) s.rendererMain += cores;
      else if (/^DedicatedWorker/.test(t.name)) s.workers += cores;
      else {
        s.rendererOther += cores;
        names.set(t.name, (names.get(t.name) ?? 0) + cores);
      }
    } else if (t.type === 'gpu-process') s.gpu += cores;
    else if (t.type === 'browser') s.browser += cores;
    else s.utility += cores;
  }
  s.threads = [...names].sort((x, y) => y[1] - x[1]).slice(0, 6);
  return s;
}

// ---------------------------------------------------------------- setup: source, trackers, Node peers

interface Build {
  name: string;
  dir: string;
  bundles: Map<string, Bundle>;
  tracker: Tracker;
  link: TrackerLink;
  peers: NodePeer[];
}

const CHANNEL = 'bench';
const out = resultsDir('page-profile');
progress('building the player, starting the source…');
await buildPlayer();
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-page-profile-'));
const channel = new SourceChannel({
  settings: channelSettings(CHANNEL, {
    ladder,
    segmentDurationS: segS,
    fps,
    x264Preset: 'ultrafast',
    title: 'page profile',
  }),
  input: { kind: 'testpattern' },
  dataDir,
});
const { origin } = await liveOrigin(channel);
await segments(channel, 2 * ladder.length);

const builds: Build[] = [];
let cleaning: Promise<void> | undefined;
let browser: Browser | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    await browser?.close().catch(() => {});
    for (const b of builds) {
      for (const p of b.peers) p.destroy();
      b.link.destroy();
      await b.tracker.destroy().catch(() => {});
    }
    await channel.destroy().catch(() => {});
    await origin.destroy().catch(() => {});
    fs.rmSync(dataDir, { recursive: true, force: true });
  })());
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

async function startBuild(name: string, dir: string): Promise<Build> {
  const tracker = new Tracker({ playerDir: dir, reportIntervalMs: 2000 });
  await tracker.listen(0, '127.0.0.1');
  const link = new TrackerLink({ trackerUrl: tracker.url, channel, origin });
  await waitFor(link, 'registered', 30_000);
  const peers: NodePeer[] = [];
  for (let i = 0; i < peerCount; i++)
    peers.push(
      await startNodePeer({
        trackerUrl: tracker.url,
        loopbackOnly: true,
        engine: { channel: CHANNEL, rendition: ladder[0]!.name, kind: 'node', mode: 'viewer' },
      }),
    );
  const bundles = new Map<string, Bundle>();
  for (const f of ['peertv.js', 'app.js'])
    if (fs.existsSync(path.join(dir, `${f}.map`))) bundles.set(f, new Bundle(path.join(dir, f)));
  const b = { name, dir, bundles, tracker, link, peers };
  builds.push(b);
  return b;
}

progress('starting the tracker(s) and Node viewers…');
const current = await startBuild(flags.label ?? 'after', path.join(root, 'player/dist'));
const previous = beforeDir ? await startBuild(flags['before-label'] ?? 'before', beforeDir) : undefined;

// ---------------------------------------------------------------- one case

interface CaseResult {
  build: string;
  case: CaseId;
  label: string;
  wallS: number;
  cpu: CpuSplit;
  /** Main-thread samples (ms) per category, and the main thread's busy share that is JS of each. */
  sampledMs: Record<Category, number>;
  cores: { ui: number; engine: number; hls: number; other: number };
  /** Layout and style recalculation (ms per second; counts per second). */
  layoutMsPerS: number;
  styleMsPerS: number;
  layoutsPerS: number;
  stylesPerS: number;
  /** This page's own share of segment bytes from peers during the window, and its stalls. */
  p2pShare: number | null;
  stalls: number;
  topFunctions: [string, number][];
}

type Metrics = Record<string, number>;
async function metrics(cdp: CDPSession): Promise<Metrics> {
  const { metrics: list } = (await cdp.send('Performance.getMetrics')) as {
    metrics: { name: string; value: number }[];
  };
  return Object.fromEntries(list.map((m) => [m.name, m.value]));
}

interface PageStats {
  httpBytes: number;
  p2pBytes: number;
  stalls: number;
}
const pageStats = (f: Page | Frame) =>
  f.evaluate(() => {
    const s = (window as unknown as { peertv?: { stats(): PageStats } }).peertv?.stats();
    return s ? { httpBytes: s.httpBytes, p2pBytes: s.p2pBytes, stalls: s.stalls } : undefined;
  });

async function runCase(build: Build, id: CaseId): Promise<CaseResult> {
  const c = CASES[id];
  browser = await launchChromium();
  try {
    const browserPid = findDescendant(process.pid, /^chrom/);
    if (!browserPid) throw new Error('cannot find the Chromium process');
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    // Chromium offers its loopback candidate only to pages holding these (nothing is captured).
    await ctx.grantPermissions(['camera', 'microphone'], { origin: build.tracker.url });
    const page = await ctx.newPage();
    const query = `?candidates=loopback${c.p2p ? '' : '&p2p=0'}`;
    let frame: Page | Frame = page;
    if (c.page === 'embed') {
      // A host page embedding the player as the README shows (same origin: one renderer).
      await page.goto(`${build.tracker.url}/healthz`);
      await page.setContent(
        `<!doctype html><body style="margin:0;background:#111"><iframe id="f" src="${build.tracker.url}/embed/${CHANNEL}${query}" width="640" height="360" allow="autoplay; fullscreen" style="border:0"></iframe></body>`,
      );
      const handle = await page.waitForSelector('#f');
      frame = (await handle.contentFrame())!;
    } else await page.goto(`${build.tracker.url}/watch/${CHANNEL}${query}`);
    await frame.waitForFunction(
      () => {
        const v = document.querySelector('video');
        return !!v && !v.paused && v.readyState >= 3 && v.currentTime > 1;
      },
      undefined,
      { timeout: 60_000 },
    );
    if (c.statsOpen) await frame.click('#stats-button');
    await page.mouse.move(1279, 799); // out of the player: its controls hide as for a viewer who watches
    await sleep(warmupS * 1000);

    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Performance.enable');
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: intervalUs });
    const s0 = await pageStats(frame);
    const m0 = await metrics(cdp);
    const t0 = threadSnapshot(browserPid);
    const w0 = performance.now();
    await cdp.send('Profiler.start');
    await sleep(durationS * 1000);
    const { profile } = (await cdp.send('Profiler.stop')) as { profile: CpuProfile };
    const wallMs = performance.now() - w0;
    const t1 = threadSnapshot(browserPid);
    const m1 = await metrics(cdp);
    const s1 = await pageStats(frame);
    fs.writeFileSync(path.join(out, `${build.name}-${id}.cpuprofile`), JSON.stringify(profile));

    const cpu = cpuSplit(t0, t1, wallMs);
    const a = attribute(profile, build.bundles);
    const busy = a.ms.ui + a.ms.engine + a.ms.hls + a.ms.browser;
    const share = (ms: number) => (busy > 0 ? ms / busy : 0);
    const ui = cpu.rendererMain * share(a.ms.ui);
    const engine = cpu.rendererMain * share(a.ms.engine);
    const hls = cpu.rendererMain * share(a.ms.hls) + cpu.workers;
    const per = (k: string) => ((m1[k] ?? 0) - (m0[k] ?? 0)) / (wallMs / 1000);
    const got = s0 && s1 ? s1.httpBytes + s1.p2pBytes - s0.httpBytes - s0.p2pBytes : 0;
    return {
      build: build.name,
      case: id,
      label: c.label,
      wallS: wallMs / 1000,
      cpu,
      sampledMs: a.ms,
      cores: { ui, engine, hls, other: cpu.total - ui - engine - hls },
      layoutMsPerS: per('LayoutDuration') * 1000,
      styleMsPerS: per('RecalcStyleDuration') * 1000,
      layoutsPerS: per('LayoutCount'),
      stylesPerS: per('RecalcStyleCount'),
      p2pShare: got > 0 ? (s1!.p2pBytes - s0!.p2pBytes) / got : null,
      stalls: s0 && s1 ? s1.stalls - s0.stalls : 0,
      topFunctions: [...a.functions]
        .map(([k, ms]): [string, number] => [k, ms / busy])
        .sort((x, y) => y[1] - x[1])
        .slice(0, 15),
    };
  } finally {
    await browser.close().catch(() => {});
    browser = undefined;
  }
}

// ---------------------------------------------------------------- run

const results: CaseResult[] = [];
const order = caseIds.flatMap((id, i) => {
  // Back to back, alternating which build goes first, so drift on a shared machine hits both.
  const pair = previous ? (i % 2 ? [previous, current] : [current, previous]) : [current];
  return pair.map((b) => ({ b, id }));
});
try {
  for (const [n, { b, id }] of order.entries()) {
    progress(
      `[${n + 1}/${order.length}] ${b.name}: ${CASES[id].label} (${warmupS} s warm-up, ${durationS} s)…`,
    );
    results.push(await runCase(b, id));
  }
} finally {
  progressDone();
  await cleanup();
}

// ---------------------------------------------------------------- report

const f3 = (v: number) => v.toFixed(3);
const pct = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(0)} %`);
const rowsOf = (rs: CaseResult[]) =>
  rs.map((r) => [
    `${r.label}${previous ? ` (${r.build})` : ''}`,
    f3(r.cpu.total),
    f3(r.cores.ui),
    f3(r.cores.engine),
    f3(r.cores.hls),
    f3(r.cores.other),
    f3(r.cpu.rendererMain),
    (r.layoutMsPerS + r.styleMsPerS).toFixed(1),
    `${r.layoutsPerS.toFixed(1)} / ${r.stylesPerS.toFixed(1)}`,
    pct(r.p2pShare),
    String(r.stalls),
  ]);
const header = [
  'page',
  'CPU (cores)',
  'UI',
  'engine',
  'hls.js',
  'other',
  'main thread',
  'layout+style ms/s',
  'layouts / styles per s',
  'from peers',
  'stalls',
];
const ordered = caseIds.flatMap((id) =>
  [previous?.name, current.name].flatMap((name) => results.filter((r) => r.case === id && r.build === name)),
);
const rows = rowsOf(ordered);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
const table = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
const md = (cells: string[]) => `| ${cells.join(' | ')} |`;
const mdTable = [md(header), md(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(md)].join(
  '\n',
);
const hotspots = ordered
  .map(
    (r) =>
      `### ${r.label} (${r.build})\n\nShare of the main thread's busy time (self time, charged to the innermost function of the UI, the engine or hls.js; the rest is the browser's own work):\n\n${r.topFunctions.map(([k, s]) => `- ${(s * 100).toFixed(1)} % ${k}`).join('\n')}\n\nOther renderer threads (cores): ${r.cpu.threads.map(([n, c]) => `${n} ${f3(c)}`).join(', ')}; workers ${f3(r.cpu.workers)}; GPU process ${f3(r.cpu.gpu)}; browser process ${f3(r.cpu.browser)}; utilities ${f3(r.cpu.utility)}.`,
  )
  .join('\n\n');
const report = `# Page CPU profile

${new Date().toISOString()} · ${os.cpus().length} cores · stream ${ladder.map((r) => `${r.name} ${r.width}×${r.height} ${r.videoKbps + r.audioKbps} kbit/s`).join(', ')} at ${fps} fps, ${segS} s segments · ${peerCount} Node viewers in the swarm · ${warmupS} s warm-up, ${durationS} s measured per page, profiler every ${intervalUs} µs${previous ? ` · builds: ${previous.name} = ${previous.dir}, ${current.name} = ${current.dir}` : ''}

CPU in cores (CPU seconds per second) of the Chromium that shows the page (one page per browser).
UI = the page's own code (player/src/app), engine = the P2P engine and its player integration
(peer/, protocol/, player/src/api.ts and loader.ts, their libraries), hls.js = its code on the main
thread plus its transmuxing worker, other = everything else (style, layout, paint, GC, compositing,
video decoding, the GPU and browser processes, the network service).

${mdTable}

## Hotspots

${hotspots}
`;
fs.writeFileSync(path.join(out, 'report.md'), report);
fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify(results, null, 2));
console.log(`\n${table}\n`);
console.log(`report: ${path.relative(root, path.join(out, 'report.md'))}`);
process.exit(0);
