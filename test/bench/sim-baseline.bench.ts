/**
 * Policies' figures at scale: every simulator scenario at each audience size for each policy, one
 * `npm run sim` run each (a child process, so that its speed and memory are its own), in one table,
 * the policies of a scenario and size on adjacent rows. `--policy random` alone: the numbers
 * Chandelier must beat; `--policy random,chandelier`: the two side by side, same seeds.
 *
 *   npm run bench:sim -- [--peers 1000,10000] [--duration S] [--byte-scale 1/N] [--policy A,B]
 *                        [--scenarios steady,flash-crowd,…] [--seed N]
 *
 * Writes results/sim-baseline-<time>/{result.json,report.md} (and each run's own report beside); the
 * last line is a summary.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { intFlag, parseFlags, UsageError } from '../../cli/args.ts';
import { SCENARIO_NAMES, type SimFigures } from '../../sim/index.ts';
import { isPolicyName, POLICY_NAMES } from '../../tracker/index.ts';
import { checkFlags, progress, progressDone, resultsDir } from './lib/stats.ts';

const BENCH = 'bench:sim';
const root = path.resolve(import.meta.dirname, '../..');

const f = checkFlags(BENCH, () => {
  const { values } = parseFlags(process.argv.slice(2), {
    peers: { type: 'string' },
    duration: { type: 'string' },
    'byte-scale': { type: 'string' },
    policy: { type: 'string' },
    scenarios: { type: 'string' },
    seed: { type: 'string' },
  });
  const peers = (values.peers ?? '1000,10000').split(',').map((p) => intFlag('peers', p, 1000, 1, 100_000));
  const scenarios = values.scenarios?.split(',') ?? SCENARIO_NAMES;
  for (const s of scenarios)
    if (!SCENARIO_NAMES.includes(s))
      throw new UsageError(`--scenarios: unknown scenario ${JSON.stringify(s)}`);
  for (const p of (values.policy ?? 'random').split(','))
    if (!isPolicyName(p))
      throw new UsageError(`--policy: unknown policy ${JSON.stringify(p)} (${POLICY_NAMES.join(', ')})`);
  const byteScale = values['byte-scale'] ?? '1/16';
  if (!/^1(\/\d{1,4})?$/.test(byteScale)) throw new UsageError('--byte-scale must be 1 or 1/N');
  return {
    peers,
    scenarios,
    byteScale,
    durationS: intFlag('duration', values.duration, 120, 10, 86_400),
    policies: (values.policy ?? 'random').split(','),
    seed: intFlag('seed', values.seed, 1, 0, 2 ** 31),
  };
});

interface Run {
  scenario: string;
  peers: number;
  policy: string;
  figures: SimFigures;
}

/** One simulation in a child process (so that its peak memory is its own). */
async function runOne(scenario: string, peers: number, policy: string, out: string): Promise<Run> {
  const args = [
    '--import',
    'tsx',
    'cli/main.ts',
    'sim',
    ...['--scenario', scenario, '--peers', String(peers), '--duration', String(f.durationS)],
    ...['--policy', policy, '--seed', String(f.seed), '--byte-scale', f.byteScale, '--out', out],
  ];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    const text = d.toString();
    stderr += text;
    // Not a terminal: the child prints its progress as plain lines.
    const line = text.trim().split('\n').at(-1);
    if (line?.startsWith('sim ')) progress(`${scenario} × ${peers}, ${policy}: ${line.slice(4)}`);
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0)
    throw new Error(`sim ${scenario} × ${peers} (${policy}) failed (exit ${code}):\n${stderr.slice(-2000)}`);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as {
    figures: SimFigures;
  };
  return { scenario, peers, policy, figures: report.figures };
}

const out = resultsDir('sim-baseline');
const runs: Run[] = [];
for (const peers of f.peers)
  for (const scenario of f.scenarios)
    for (const policy of f.policies) {
      progress(`${scenario} × ${peers}, ${policy}: starting…`);
      runs.push(await runOne(scenario, peers, policy, path.join(out, `${scenario}-${peers}-${policy}`)));
    }
progressDone();

// Figures come back from JSON, where NaN is null.
const ok = (x: number | null): x is number => typeof x === 'number' && Number.isFinite(x);
const pct = (x: number | null) => (ok(x) ? `${(x * 100).toFixed(1)} %` : 'n/a');
const f2 = (x: number | null) => (ok(x) ? x.toFixed(2) : 'n/a');
const f3 = (x: number | null) => (ok(x) ? x.toFixed(3) : 'n/a');
const table = [
  '| scenario | peers | policy | offload (2nd half) | continuity | stalls (viewers) | never started | startup p50 / p95 | latency p50 / p95 | upload copies p50 / p99 / max | top 1 % share | depth mean / max | reach 99 % p50 | speed | max RSS |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...runs
    .map(({ scenario, peers, policy, figures: x }) =>
      [
        scenario,
        peers,
        policy,
        `${pct(x.offload)} (${pct(x.steadyOffload)})`,
        f3(x.continuity),
        `${x.stalls} (${x.stalledViewers})`,
        x.neverStarted,
        `${f2(x.startupS.p50)} / ${f2(x.startupS.p95)} s`,
        `${f2(x.latencyS.p50)} / ${f2(x.latencyS.p95)} s`,
        `${f2(x.upload.copiesP50)} / ${f2(x.upload.copiesP99)} / ${f2(x.upload.copiesMax)}`,
        pct(x.upload.top1PctShare),
        `${f2(x.depth.mean)} / ${x.depth.max}`,
        `${f2(x.reachS.p50Of99)} s`,
        `${f2(x.speed)}×`,
        `${(x.rssMaxMB / 1024).toFixed(2)} GB`,
      ].join(' | '),
    )
    .map((row) => `| ${row} |`),
].join('\n');
fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify({ flags: f, runs }, null, 2));
fs.writeFileSync(
  path.join(out, 'report.md'),
  `# Simulator: ${f.policies.join(' and ')} at scale (${new Date().toISOString()})\n\n` +
    `\`npm run sim -- --scenario S --peers N --duration ${f.durationS} --policy P --seed ${f.seed} --byte-scale ${f.byteScale}\`; each run's own report is in its directory.\n\n${table}\n`,
);
process.stdout.write(`${table}\n\nreport: ${path.relative(root, out)}/report.md\n`);
const worst = runs.reduce((a, b) => ((b.figures.offload ?? 1) < (a.figures.offload ?? 1) ? b : a));
process.stdout.write(
  `runs=${runs.length} policy=${f.policies.join(',')} peers=${f.peers.join(',')} worst_offload=${f2(worst.figures.offload)} (${worst.scenario}×${worst.peers})\n`,
);
