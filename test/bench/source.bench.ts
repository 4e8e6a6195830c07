/**
 * `npm run bench:source [-- --duration 60 --rtf-seconds 30 --ladder SPEC]`
 *
 * 1. Real-time factor of the ladder: the exact live ffmpeg plan, unpaced, on `--rtf-seconds` of test pattern.
 * 2. Publication latency on a live channel (paced, as broadcast): for every segment, the time from the
 *    segment being complete on disk (its file's last write, mtime) to its attestation being
 *    (a) signed and indexed, (b) served by the origin over HTTP.
 * Writes results/source-<time>/{result.json,report.md,*.svg}; prints a summary line last.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildFfmpegPlan,
  channelSettings,
  DEFAULT_LADDER,
  FfmpegRun,
  findFfmpeg,
  Origin,
  parseLadder,
  SourceChannel,
  type Rendition,
} from '../../source/index.ts';
import { mean, progress, progressDone, quantile, resultsDir } from './lib/stats.ts';
import { histogramSvg, lineSvg } from '../../sim/index.ts';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    'rtf-seconds': { type: 'string', default: '30' },
    ladder: { type: 'string' },
    preset: { type: 'string', default: 'veryfast' },
  },
});
const durationS = Number(flags.duration);
const rtfSeconds = Number(flags['rtf-seconds']);
if (!(durationS >= 10) || !(rtfSeconds >= 4)) throw new Error('--duration ≥ 10 and --rtf-seconds ≥ 4');
const ladder: readonly Rendition[] = flags.ladder ? parseLadder(flags.ladder) : DEFAULT_LADDER;
const out = resultsDir('source');
const work = path.join(out, 'data');
const bins = findFfmpeg();
const settings = channelSettings('bench', {
  ladder,
  x264Preset: flags.preset as 'veryfast',
  title: 'bench',
});
const ladderText = ladder.map((r) => `${r.name} ${r.width}x${r.height} ${r.videoKbps}k`).join(', ');
console.log(
  `ladder: ${ladderText}; ${settings.fps} fps, ${settings.segmentDurationS} s segments, x264 ${settings.x264Preset}`,
);

// ---- 1. real-time factor ----
async function realTimeFactor(): Promise<{ rtf: number; wallS: number }> {
  const workDir = path.join(work, 'rtf');
  for (const r of ladder) fs.mkdirSync(path.join(workDir, r.name), { recursive: true });
  const plan = buildFfmpegPlan(
    settings,
    { kind: 'testpattern' },
    { workDir, hasAudio: true, realtime: false, maxDurationS: rtfSeconds },
  );
  const t0 = performance.now();
  const run = new FfmpegRun(plan, bins);
  const tick = setInterval(
    () =>
      progress(
        `real-time factor: encoding ${rtfSeconds} s of test pattern… ${((performance.now() - t0) / 1000).toFixed(0)} s`,
      ),
    1000,
  );
  const [exit] = await new Promise<[{ code: number | null; stderrTail: string[] }]>((resolve) =>
    run.once('exit', (i) => resolve([i])),
  );
  clearInterval(tick);
  progressDone();
  if (exit.code !== 0) throw new Error(`ffmpeg failed: ${exit.stderrTail.join('\n')}`);
  const wallS = (performance.now() - t0) / 1000;
  return { rtf: rtfSeconds / wallS, wallS };
}

// ---- 2. publication latency ----
interface Sample {
  rendition: string;
  seq: number;
  atS: number;
  indexedMs: number;
  servedMs: number;
}

async function publicationLatency(): Promise<{ samples: Sample[]; driftS: number; mediaS: number }> {
  const channel = new SourceChannel({
    settings,
    input: { kind: 'testpattern' },
    dataDir: path.join(work, 'live'),
  });
  const origin = new Origin();
  origin.addChannel(channel);
  await origin.listen(0);
  const base = `${origin.publicUrl}/channels/bench`;
  const samples: Sample[] = [];
  const pending: Promise<void>[] = [];
  let t0 = 0;
  // Drift: per rendition, wall time between its first and latest publication minus the media time
  // published in between. Stays near 0 when the encoder keeps up with real time; grows when it does not.
  const firstByRendition = new Map<string, number>();
  const mediaMs = new Map<string, number>();
  const drift = new Map<string, number>();
  channel.on('segment', (a) => {
    const indexedAt = Date.now();
    const mtimeMs = fs.statSync(channel.store.segmentPath(a.rendition, a.mediaSequence)).mtimeMs;
    if (!firstByRendition.has(a.rendition)) firstByRendition.set(a.rendition, indexedAt);
    else {
      mediaMs.set(a.rendition, (mediaMs.get(a.rendition) ?? 0) + a.durationMs);
      drift.set(
        a.rendition,
        (indexedAt - firstByRendition.get(a.rendition)! - mediaMs.get(a.rendition)!) / 1000,
      );
    }
    pending.push(
      fetch(`${base}/segments/${a.rendition}/${a.mediaSequence}.json`).then(async (r) => {
        await r.arrayBuffer();
        const servedAt = Date.now();
        if (r.status !== 200) throw new Error(`attestation not served: ${r.status}`);
        samples.push({
          rendition: a.rendition,
          seq: a.mediaSequence,
          atS: (indexedAt - t0) / 1000,
          indexedMs: indexedAt - mtimeMs,
          servedMs: servedAt - mtimeMs,
        });
      }),
    );
  });
  t0 = Date.now();
  await channel.start();
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const el = (Date.now() - t0) / 1000;
      progress(`live channel: ${el.toFixed(0)}/${durationS} s, ${samples.length} segments published`);
      if (el >= durationS) {
        clearInterval(tick);
        resolve();
      }
    }, 1000);
  });
  progressDone();
  const mediaS = Math.min(...mediaMs.values()) / 1000;
  await channel.destroy();
  await Promise.all(pending);
  await origin.destroy();
  return { samples, driftS: Math.max(...drift.values()), mediaS };
}

const rtf = await realTimeFactor();
console.log(
  `real-time factor: ${rtf.rtf.toFixed(2)} (${rtfSeconds} s of media in ${rtf.wallS.toFixed(1)} s)`,
);
const live = await publicationLatency();
fs.rmSync(work, { recursive: true, force: true });

const indexed = live.samples.map((s) => s.indexedMs);
const served = live.samples.map((s) => s.servedMs);
const result = {
  date: new Date().toISOString(),
  machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
  ladder,
  segmentDurationS: settings.segmentDurationS,
  fps: settings.fps,
  x264Preset: settings.x264Preset,
  realTimeFactor: { value: rtf.rtf, mediaS: rtfSeconds, wallS: rtf.wallS },
  publication: {
    segments: live.samples.length,
    indexedMs: {
      median: quantile(indexed, 0.5),
      p95: quantile(indexed, 0.95),
      max: Math.max(...indexed),
      mean: mean(indexed),
    },
    servedMs: {
      median: quantile(served, 0.5),
      p95: quantile(served, 0.95),
      max: Math.max(...served),
      mean: mean(served),
    },
    liveDriftS: live.driftS,
    mediaPublishedS: live.mediaS,
  },
  samples: live.samples,
};
fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify(result, null, 2));
fs.writeFileSync(
  path.join(out, 'latency-histogram.svg'),
  histogramSvg({
    title: 'Segment complete on disk → attestation served over HTTP',
    xLabel: 'ms',
    values: served,
  }),
);
fs.writeFileSync(
  path.join(out, 'latency-over-time.svg'),
  lineSvg({
    title: 'Publication latency per segment',
    xLabel: 'seconds into the broadcast',
    yLabel: 'ms',
    series: ladder.map((r) => ({
      label: r.name,
      points: live.samples
        .filter((s) => s.rendition === r.name)
        .map((s) => [s.atS, s.servedMs] as [number, number]),
    })),
  }),
);
const f = (n: number) => n.toFixed(1);
fs.writeFileSync(
  path.join(out, 'report.md'),
  `# Source benchmark (${result.date})

Ladder: ${ladderText}; ${settings.fps} fps; ${settings.segmentDurationS} s segments; x264 \`${settings.x264Preset}\`; ${result.machine.cpus} cores.

| figure | value | target |
|---|---|---|
| real-time factor (unpaced encode of ${rtfSeconds} s) | ${rtf.rtf.toFixed(2)} | ≥ 1.0 |
| complete on disk → attestation signed and indexed, median / p95 / max | ${f(result.publication.indexedMs.median)} / ${f(result.publication.indexedMs.p95)} / ${f(result.publication.indexedMs.max)} ms | median < 20 ms |
| complete on disk → attestation served over HTTP, median / p95 / max | ${f(result.publication.servedMs.median)} / ${f(result.publication.servedMs.p95)} / ${f(result.publication.servedMs.max)} ms | |
| live drift after ${durationS} s (wall − media time between first and last publication, worst rendition) | ${live.driftS.toFixed(2)} s | ≈ 0 |
| segments measured | ${live.samples.length} | |

![latency histogram](latency-histogram.svg)

![latency over time](latency-over-time.svg)
`,
);
console.log(`report: ${path.relative(process.cwd(), path.join(out, 'report.md'))}`);
console.log(
  `rtf=${rtf.rtf.toFixed(2)} attest_median_ms=${f(result.publication.servedMs.median)} attest_p95_ms=${f(result.publication.servedMs.p95)} ` +
    `indexed_median_ms=${f(result.publication.indexedMs.median)} drift_s=${live.driftS.toFixed(2)} segments=${live.samples.length}`,
);
