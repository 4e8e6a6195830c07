/**
 * The simulator's calibration: the same scenarios on the real stack (`npm run bench`: 30 Node viewers,
 * light ladder, real ffmpeg, tracker, origin and WebRTC on this machine) and in the simulator (30
 * simulated viewers with the `bench-2core` profile), side by side, with a tolerance per figure.
 *
 * The profile's values are fitted to the bench's component figures (engine start, HTTP and P2P segment
 * load times); the outcome figures (offload, continuity, stalls, startup, latency) are compared, not
 * fitted. The real stack does not agree with itself from run to run on a 2-core machine, so each
 * scenario runs `--runs` times on each side: the sim agrees when its range overlaps the real range
 * widened by the figure's tolerance.
 *
 *   npm run bench:calibrate -- [--runs N] [--scenarios steady,flash-crowd,churn] [--duration S]
 *                              [--real-from results/calibrate-<time>]
 *
 * `--real-from` reuses the real runs of an earlier calibration (its result.json) and runs only the
 * simulator: the real side takes minutes and depends on how busy the machine is, the simulator's
 * seconds (for refitting a profile against the same measurements).
 *
 * Writes results/calibrate-<time>/{result.json,report.md,calibration.svg}; the last line is a summary.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { intFlag, parseFlags, UsageError } from '../../cli/args.ts';
import { barSvg, figures as simFigures, scenarioFor, simulate, type SimFigures } from '../../sim/index.ts';
import { benchUsage, checkFlags, progress, progressDone, resultsDir } from './lib/stats.ts';

const BENCH = 'bench:calibrate';
const root = path.resolve(import.meta.dirname, '../..');

const f = checkFlags(BENCH, () => {
  const { values } = parseFlags(process.argv.slice(2), {
    runs: { type: 'string' },
    scenarios: { type: 'string' },
    duration: { type: 'string' },
    viewers: { type: 'string' },
    'real-from': { type: 'string' },
  });
  const scenarios = (values.scenarios ?? 'steady,flash-crowd,churn').split(',');
  for (const s of scenarios)
    if (!['steady', 'flash-crowd', 'churn'].includes(s))
      throw new UsageError(`--scenarios: ${s} is not steady, flash-crowd or churn`);
  return {
    runs: intFlag('runs', values.runs, 2, 1, 10),
    durationS: intFlag('duration', values.duration, 90, 30, 600),
    viewers: intFlag('viewers', values.viewers, 30, 2, 60),
    scenarios,
    realFrom: values['real-from'],
  };
});

/** Real runs of an earlier calibration, by scenario (only if they ran what this run simulates). */
const earlier = f.realFrom === undefined ? undefined : realRunsFrom(f.realFrom);

function realRunsFrom(dir: string): Record<string, { real: RealFigures[] }> {
  let saved: { flags: { viewers: number; durationS: number }; raw: Record<string, { real: RealFigures[] }> };
  try {
    saved = JSON.parse(fs.readFileSync(path.resolve(dir, 'result.json'), 'utf8')) as typeof saved;
  } catch (err) {
    return benchUsage(BENCH, `--real-from: ${(err as Error).message}`);
  }
  if (saved.flags?.viewers !== f.viewers || saved.flags?.durationS !== f.durationS)
    benchUsage(
      BENCH,
      `--real-from: those runs had ${saved.flags?.viewers} viewers for ${saved.flags?.durationS} s, not ${f.viewers} for ${f.durationS} s`,
    );
  return saved.raw;
}

/** The figures compared, how to read them from either side, and how far apart they may be. */
interface Compared {
  name: string;
  unit: string;
  tolerance: number;
  real: (x: RealFigures) => number;
  sim: (x: SimFigures) => number;
}
interface RealFigures {
  offload: number;
  continuity: number;
  stalls: number;
  startupS: { p50: number; p95: number };
  latencyS: { p50: number; p95: number };
  joinS: { p50: number; p95: number };
  segmentMs: { http: { p50: number; p95: number }; p2p: { p50: number; p95: number } };
}
const COMPARED: Compared[] = [
  // Outcomes (not fitted).
  { name: 'offload', unit: '', tolerance: 0.03, real: (x) => x.offload, sim: (x) => x.offload },
  { name: 'continuity', unit: '', tolerance: 0.01, real: (x) => x.continuity, sim: (x) => x.continuity },
  { name: 'stalls', unit: 'count', tolerance: 2, real: (x) => x.stalls, sim: (x) => x.stalls },
  {
    name: 'startup p50',
    unit: 's',
    tolerance: 0.15,
    real: (x) => x.startupS.p50,
    sim: (x) => x.startupS.p50,
  },
  { name: 'latency p50', unit: 's', tolerance: 0.3, real: (x) => x.latencyS.p50, sim: (x) => x.latencyS.p50 },
  // Components (the profile is fitted to their p50s; p95s show the tails it does not model).
  { name: 'engine start p50', unit: 's', tolerance: 0.05, real: (x) => x.joinS.p50, sim: (x) => x.joinS.p50 },
  {
    name: 'HTTP segment load p50',
    unit: 'ms',
    tolerance: 30,
    real: (x) => x.segmentMs.http.p50,
    sim: (x) => x.segmentMs.http.p50,
  },
  {
    name: 'P2P segment load p50',
    unit: 'ms',
    tolerance: 30,
    real: (x) => x.segmentMs.p2p.p50,
    sim: (x) => x.segmentMs.p2p.p50,
  },
];

/** One real bench run of a scenario: its phase figures (from its result.json). */
async function realRun(scenario: string): Promise<RealFigures> {
  const args = [
    '--import',
    'tsx',
    'test/bench/swarm.bench.ts',
    ...['--scenario', scenario, '--viewers', String(f.viewers), '--browsers', '0'],
    ...['--duration', String(f.durationS), '--light', '--fps', '15', '--preset', 'ultrafast'],
  ];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    const line = d.toString().trim().split('\n').at(-1);
    if (line) progress(`real ${scenario}: ${line.slice(0, 100)}`);
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const report = /report: (\S+)\/report\.md/.exec(stdout)?.[1];
  if (code !== 0 || !report)
    throw new Error(`bench ${scenario} failed (exit ${code}):\n${stdout.slice(-2000)}`);
  const result = JSON.parse(fs.readFileSync(path.resolve(root, report, 'result.json'), 'utf8')) as {
    phases: { figures: RealFigures }[];
  };
  return result.phases[0]!.figures;
}

async function simRun(scenario: string, seed: number): Promise<SimFigures> {
  const s = scenarioFor(scenario, {
    peers: f.viewers,
    durationS: f.durationS,
    seed,
    profile: 'bench-2core',
  });
  return simFigures(await simulate(s));
}

const range = (xs: number[]) => ({ min: Math.min(...xs), max: Math.max(...xs) });
const DECIMALS: Record<string, number> = { ms: 0, s: 2, count: 0, '': 3 };
const fmt = (x: number, unit: string) => (Number.isFinite(x) ? x.toFixed(DECIMALS[unit] ?? 3) : 'n/a');
const unitText = (unit: string) => (unit === '' || unit === 'count' ? '' : ` ${unit}`);
const fmtRange = (r: { min: number; max: number }, unit: string) =>
  r.min === r.max ? fmt(r.min, unit) : `${fmt(r.min, unit)}–${fmt(r.max, unit)}`;

const out = resultsDir('calibrate');
const rows: {
  scenario: string;
  figure: string;
  unit: string;
  real: { min: number; max: number };
  sim: { min: number; max: number };
  tolerance: number;
  agrees: boolean;
}[] = [];
const raw: Record<string, { real: RealFigures[]; sim: SimFigures[] }> = {};
for (const scenario of f.scenarios) {
  const real: RealFigures[] = [];
  const sim: SimFigures[] = [];
  for (let i = 0; i < f.runs; i++) {
    const reused = earlier?.[scenario]?.real[i];
    if (earlier && !reused) throw new Error(`--real-from: no run ${i + 1} of ${scenario} there`);
    progress(`real ${scenario}: run ${i + 1} of ${f.runs}…`);
    real.push(reused ?? (await realRun(scenario)));
    progress(`sim ${scenario}: seed ${i + 1} of ${f.runs}…`);
    sim.push(await simRun(scenario, i + 1));
  }
  raw[scenario] = { real, sim };
  for (const c of COMPARED) {
    const r = range(real.map(c.real));
    const s = range(sim.map(c.sim));
    // Overlap of the sim's range with the real range widened by the tolerance.
    const agrees = s.max >= r.min - c.tolerance && s.min <= r.max + c.tolerance;
    rows.push({ scenario, figure: c.name, unit: c.unit, real: r, sim: s, tolerance: c.tolerance, agrees });
  }
}
progressDone();

const table = [
  '| scenario | figure | real (range over runs) | sim (range over seeds) | tolerance | agrees |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.scenario} | ${r.figure} | ${fmtRange(r.real, r.unit)}${unitText(r.unit)} | ${fmtRange(r.sim, r.unit)}${unitText(r.unit)} | ±${r.tolerance}${unitText(r.unit)} | ${r.agrees ? 'yes' : '**no**'} |`,
  ),
].join('\n');
const agreeing = rows.filter((r) => r.agrees).length;
fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify({ flags: f, rows, raw }, null, 2));
// Per scenario, each figure's sim midpoint over its real midpoint (1 = agreement).
const figureNames = COMPARED.map((c) => c.name).filter((n) => n !== 'stalls');
fs.writeFileSync(
  path.join(out, 'calibration.svg'),
  barSvg({
    title: 'sim ÷ real, midpoints of the ranges (1 = agreement)',
    yLabel: 'sim ÷ real',
    categories: figureNames,
    series: f.scenarios.map((scenario) => ({
      label: scenario,
      values: figureNames.map((name) => {
        const r = rows.find((x) => x.scenario === scenario && x.figure === name)!;
        return (r.sim.max + r.sim.min) / (r.real.max + r.real.min);
      }),
    })),
  }),
);
fs.writeFileSync(
  path.join(out, 'report.md'),
  `# Simulator calibration (${new Date().toISOString()})\n\n` +
    `${f.viewers} viewers, ${f.durationS} s, light ladder; real${f.realFrom ? ` (the runs of ${f.realFrom})` : ''}: \`npm run bench -- --scenario S --viewers ${f.viewers} --browsers 0 --duration ${f.durationS} --light --fps 15 --preset ultrafast\`, ${f.runs} runs; ` +
    `sim: \`npm run sim -- --scenario S --profile bench-2core --peers ${f.viewers} --duration ${f.durationS}\`, seeds 1–${f.runs}.\n\n` +
    `${table}\n\n![calibration](calibration.svg)\n`,
);
process.stdout.write(`${table}\n\nreport: ${path.relative(root, out)}/report.md\n`);
process.stdout.write(
  `agree=${agreeing}/${rows.length} scenarios=${f.scenarios.join(',')} runs=${f.runs} viewers=${f.viewers}\n`,
);
