/**
 * Builds the web player into player/dist (esbuild; everything bundled, no CDN): `peertv.js` (the
 * `PeerTV` API), `app.js` (the pages), and the static files; and the tracker's dashboard
 * (tracker/dashboard/dashboard.ts, which shares the player's chart and formatters) into
 * tracker/dashboard/dist/dashboard.js, where the tracker serves it as `/dashboard/dist/dashboard.js`; writes a brotli (`.br`) and a gzip (`.gz`)
 * copy next to each text file for the tracker to serve (tracker/static-files.ts), and a size report,
 * `size.json`: raw, gzip and brotli bytes of the page's JavaScript against hls.js's own minified build,
 * and what each bundle is made of. Skips the work when nothing changed.
 * Node-only (the player room's build; `tsx scripts/build-player.ts [--force]`, `npm run build:player`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';

const root = path.resolve(import.meta.dirname, '../..');
const dist = path.join(root, 'player/dist');
const dashboardDir = path.join(root, 'tracker/dashboard');
const dashboardDist = path.join(dashboardDir, 'dist');
const inputs = ['player', 'peer', 'protocol', 'tracker/dashboard'].map((d) => path.join(root, d));
/** Files whose content changes the output besides the sources: this script, package.json (`sideEffects`). */
const buildFiles = [
  import.meta.filename,
  path.join(root, 'package.json'),
  path.join(root, 'package-lock.json'),
];
/** hls.js's own minified build: the yardstick for the page's weight (issue 11: ≤ 1.3× compressed). */
const HLS_MIN = path.join(root, 'node_modules/hls.js/dist/hls.min.js');
export const PAGE_WEIGHT_TARGET = 1.3;
/** The JavaScript a watch or embed page loads. */
const PAGE_JS = ['peertv.js', 'app.js'] as const;
const COMPRESS_EXTENSIONS = new Set(['.js', '.css', '.html', '.json', '.svg', '.txt']);
const GZIP_LEVEL = 9;
const BROTLI_QUALITY = 11;

export interface SizeFigures {
  rawBytes: number;
  gzipBytes: number;
  brotliBytes: number;
}

export interface SizeReport {
  gzipLevel: number;
  brotliQuality: number;
  /** Every precompressed file of the build, by name. */
  files: Record<string, SizeFigures>;
  /** peertv.js + app.js: the JavaScript of a watch page. */
  pageJs: SizeFigures;
  /** `node_modules/hls.js/dist/hls.min.js`, compressed the same way. */
  hlsJs: SizeFigures & { version: string };
  /** pageJs ÷ hlsJs. */
  ratio: { raw: number; gzip: number; brotli: number };
  target: number;
  /** Both compressed ratios at or under the target. */
  withinTarget: boolean;
  /** Bytes each package (or source folder) contributes to each bundle, largest first. */
  composition: Record<string, Record<string, number>>;
}

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);

function fingerprint(): string {
  const h = crypto.createHash('sha256');
  const walk = (dir: string): void => {
    for (const e of fs
      .readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (p === dist || p === dashboardDist) continue;
      if (e.isDirectory()) walk(p);
      else h.update(p).update(String(fs.statSync(p).mtimeMs));
    }
  };
  inputs.forEach(walk);
  for (const f of buildFiles) h.update(fs.readFileSync(f));
  return h.digest('hex');
}

/** What every bundle is built with. */
function esbuildOptions(): esbuild.BuildOptions {
  return {
    bundle: true,
    minify: process.env.PEERTV_NO_MINIFY !== '1',
    sourcemap: true,
    target: ['chrome110', 'firefox110', 'safari16'],
    platform: 'browser',
    format: 'iife',
    logLevel: 'warning',
    metafile: true,
    define: { 'process.env.NODE_DEBUG': 'false', global: 'globalThis' },
    external: ['@roamhq/wrtc'],
    // hls.js's light build: everything our streams need (MPEG-TS, H.264 + AAC, one audio track, live
    // and VOD, ABR, live sync) without subtitles and captions, alternate audio, EME/DRM, CMCD and
    // interstitials: 360 KB minified instead of 575. Types still come from 'hls.js' (same API).
    alias: { 'hls.js': 'hls.js/light' },
  };
}

/** Builds (unless up to date) and returns the size report. */
export async function buildPlayer(force = false): Promise<SizeReport> {
  const stamp = path.join(dist, '.build-stamp');
  const report = path.join(dist, 'size.json');
  const fp = fingerprint();
  if (
    !force &&
    fs.existsSync(stamp) &&
    fs.readFileSync(stamp, 'utf8') === fp &&
    fs.existsSync(report) &&
    fs.existsSync(path.join(dashboardDist, 'dashboard.js'))
  )
    return JSON.parse(fs.readFileSync(report, 'utf8')) as SizeReport;
  fs.rmSync(dist, { recursive: true, force: true });
  fs.mkdirSync(dist, { recursive: true });
  const common = esbuildOptions();
  const composition: SizeReport['composition'] = {};
  const bundle = async (entry: string, out: string, extra: esbuild.BuildOptions = {}): Promise<void> => {
    const r = await esbuild.build({
      ...common,
      ...extra,
      entryPoints: [entry],
      outfile: path.join(dist, out),
    });
    composition[out] = compositionOf(r.metafile!, out);
  };
  await bundle(path.join(root, 'player/src/index.ts'), 'peertv.js', {
    globalName: 'PeerTV',
    // simple-peer and its streams expect a few Node globals (the pages' own code needs none).
    inject: [path.join(root, 'player/src/node-shims.ts')],
  });
  const app = path.join(root, 'player/src/app/main.ts');
  if (fs.existsSync(app)) await bundle(app, 'app.js');
  await buildDashboard();
  if (fs.existsSync(path.join(root, 'player/static')))
    fs.cpSync(path.join(root, 'player/static'), dist, { recursive: true });

  const files: SizeReport['files'] = {};
  await Promise.all(
    fs
      .readdirSync(dist)
      .filter((f) => COMPRESS_EXTENSIONS.has(path.extname(f)))
      .map(async (f) => {
        const p = path.join(dist, f);
        const sizes = await compressed(fs.readFileSync(p), p);
        files[f] = sizes;
      }),
  );
  const sum = (names: readonly string[]): SizeFigures =>
    names.reduce(
      (a, n) => ({
        rawBytes: a.rawBytes + (files[n]?.rawBytes ?? 0),
        gzipBytes: a.gzipBytes + (files[n]?.gzipBytes ?? 0),
        brotliBytes: a.brotliBytes + (files[n]?.brotliBytes ?? 0),
      }),
      { rawBytes: 0, gzipBytes: 0, brotliBytes: 0 },
    );
  const pageJs = sum(PAGE_JS);
  const hlsVersion = (
    JSON.parse(fs.readFileSync(path.join(root, 'node_modules/hls.js/package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  const hlsJs = { ...(await compressed(fs.readFileSync(HLS_MIN))), version: hlsVersion };
  const ratio = {
    raw: pageJs.rawBytes / hlsJs.rawBytes,
    gzip: pageJs.gzipBytes / hlsJs.gzipBytes,
    brotli: pageJs.brotliBytes / hlsJs.brotliBytes,
  };
  const result: SizeReport = {
    gzipLevel: GZIP_LEVEL,
    brotliQuality: BROTLI_QUALITY,
    files: Object.fromEntries(Object.entries(files).sort(([a], [b]) => a.localeCompare(b))),
    pageJs,
    hlsJs,
    ratio,
    target: PAGE_WEIGHT_TARGET,
    withinTarget: ratio.gzip <= PAGE_WEIGHT_TARGET && ratio.brotli <= PAGE_WEIGHT_TARGET,
    composition,
  };
  fs.writeFileSync(report, `${JSON.stringify(result, null, 2)}\n`);
  fs.writeFileSync(stamp, fp);
  return result;
}

/**
 * The dashboard's script, written next to the dashboard's page. Each file is written under a temporary
 * name and renamed, so a tracker serving the dashboard while a test rebuilds never sends half a file
 * (the directory is not emptied first, unlike player/dist). `buildPlayer` calls it; the dashboard's
 * test calls it alone (quick, and it leaves player/dist to the tests that rebuild it).
 */
export async function buildDashboard(): Promise<void> {
  const r = await esbuild.build({
    ...esbuildOptions(),
    metafile: false,
    write: false,
    entryPoints: [path.join(dashboardDir, 'dashboard.ts')],
    outfile: path.join(dashboardDist, 'dashboard.js'),
  });
  fs.mkdirSync(dashboardDist, { recursive: true });
  for (const f of r.outputFiles) {
    const tmp = `${f.path}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, f.contents);
    fs.renameSync(tmp, f.path);
  }
}

/**
 * Compresses `bytes` with gzip and brotli (text mode, highest settings: done once per build); with
 * `file`, writes `<file>.gz` and `<file>.br` when they are smaller than the file.
 */
async function compressed(bytes: Buffer, file?: string): Promise<SizeFigures> {
  const [gz, br] = await Promise.all([
    gzip(bytes, { level: GZIP_LEVEL }),
    brotli(bytes, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
        [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
      },
    }),
  ]);
  if (file) {
    if (gz.length < bytes.length) fs.writeFileSync(`${file}.gz`, gz);
    if (br.length < bytes.length) fs.writeFileSync(`${file}.br`, br);
  }
  return {
    rawBytes: bytes.length,
    gzipBytes: Math.min(gz.length, bytes.length),
    brotliBytes: Math.min(br.length, bytes.length),
  };
}

/** Bytes in the output per npm package (`zod`, `@scope/name`) or per source folder (`peer/core`). */
function compositionOf(meta: esbuild.Metafile, out: string): Record<string, number> {
  const output = Object.entries(meta.outputs).find(([name]) => name.endsWith(`/${out}`))?.[1];
  const by: Record<string, number> = {};
  for (const [input, { bytesInOutput }] of Object.entries(output?.inputs ?? {})) {
    if (bytesInOutput === 0) continue;
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1];
    const key = pkg ?? path.dirname(input);
    by[key] = (by[key] ?? 0) + bytesInOutput;
  }
  return Object.fromEntries(Object.entries(by).sort(([, a], [, b]) => b - a));
}

/** The report as a table (what the CLI prints). */
export function formatSizeReport(r: SizeReport): string {
  const kb = (n: number) => `${(n / 1000).toFixed(1)} kB`.padStart(10);
  const row = (name: string, s: SizeFigures) =>
    `${name.padEnd(26)}${kb(s.rawBytes)}${kb(s.gzipBytes)}${kb(s.brotliBytes)}`;
  const x = (n: number) => `${n.toFixed(2)}×`;
  const top = Object.entries(r.composition['peertv.js'] ?? {})
    .slice(0, 8)
    .map(([k, v]) => `${k} ${(v / 1000).toFixed(0)} kB`)
    .join(', ');
  return [
    `${'player/dist'.padEnd(26)}${'raw'.padStart(10)}${'gzip'.padStart(10)}${'brotli'.padStart(10)}`,
    ...PAGE_JS.filter((f) => r.files[f]).map((f) => row(f, r.files[f]!)),
    row('page JavaScript', r.pageJs),
    row(`hls.js ${r.hlsJs.version} hls.min.js`, r.hlsJs),
    `${'ratio to hls.js'.padEnd(26)}${x(r.ratio.raw).padStart(10)}${x(r.ratio.gzip).padStart(10)}${x(r.ratio.brotli).padStart(10)}` +
      `   target ≤ ${r.target}× compressed: ${r.withinTarget ? 'met' : 'NOT MET'}`,
    `peertv.js is made of: ${top}, …`,
  ].join('\n');
}
