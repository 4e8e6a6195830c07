/** `peertv sim` (`npm run sim`): the discrete-event simulator; writes a report and prints a summary. */
import fs from 'node:fs';
import path from 'node:path';
import {
  figures,
  markdown,
  plots,
  scenarioFor,
  scenarioFromJson,
  ScenarioError,
  SCENARIO_NAMES,
  PROFILE_NAMES,
  simulate,
  summaryLine,
  isUploadDist,
  SIM_LADDERS,
  UPLOAD_DISTS,
  uploadDistribution,
  type Scenario,
} from '../sim/index.ts';
import { intFlag, parseFlags, UsageError } from './args.ts';

export const SIM_HELP = `Usage: peertv sim [options]   (npm run sim -- [options])

Runs real peer engines and the tracker's real session core on a simulated network, origin and source,
in virtual time (deterministic: the same seed gives the same report). Writes report.json, report.md and
SVG plots under results/sim-<time>/ (or --out), shows progress on stderr and prints the summary last.

Options:
  --scenario NAME        ${SCENARIO_NAMES.join(', ')} (default steady)
  --scenario-file PATH   a JSON scenario: {"base": "steady", …fields to override} ("unlimited" = no cap)
  --peers N              viewers (default 30)
  --duration S           simulated seconds (default 90)
  --policy NAME          overlay policy: random (the baseline) or chandelier
  --seed N               random seed (default 1)
  --ladder NAME          light (480p/240p, as npm run bench --light) or default (720p/480p/360p)
  --profile NAME         ${PROFILE_NAMES.join(', ')} laid over the scenario (bench-2core: the 2-core bench machine's
                         loopback under CPU contention, fitted to the bench's component figures)
  --upload-dist NAME     viewers' upload capacity drawn from a named distribution (home: 30 % below the
                         stream's bitrate, 50 % at 1–3×, 20 % at 3–10×), instead of the scenario's
  --no-relay             engines pass segments on only once held (store and forward; the default
                         relays them while they arrive)
  --start-behind N       viewers start N segments behind the newest (default 1; latency ≈ N + 1 segment
                         durations)
  --byte-scale 1/N       payloads, capacities and the engines' byte settings scaled by 1/N, for speed and
                         memory; decisions stay those of real sizes (default 1)
  --out DIR              where the report goes
`;

const MAX_SCENARIO_FILE_BYTES = 64 * 1024;

function scaleFlag(value: string | undefined): number {
  if (value === undefined) return 1;
  const m = /^1\/(\d{1,4})$/.exec(value) ?? /^(1)$/.exec(value);
  if (!m) throw new UsageError(`--byte-scale must be 1 or 1/N (got "${value}")`);
  const n = Number(m[1]);
  if (!(n >= 1 && n <= 1024)) throw new UsageError('--byte-scale: N must be from 1 to 1024');
  return value === '1' ? 1 : 1 / n;
}

export async function runSimCli(argv: string[]): Promise<void> {
  const { values: f } = parseFlags(argv, {
    scenario: { type: 'string' },
    'scenario-file': { type: 'string' },
    peers: { type: 'string' },
    duration: { type: 'string' },
    policy: { type: 'string' },
    seed: { type: 'string' },
    ladder: { type: 'string' },
    profile: { type: 'string' },
    'byte-scale': { type: 'string' },
    'upload-dist': { type: 'string' },
    'start-behind': { type: 'string' },
    'no-relay': { type: 'boolean' },
    out: { type: 'string' },
  });
  if (f.help) {
    process.stdout.write(SIM_HELP);
    return;
  }
  const overrides: Partial<Scenario> = {};
  if (f.peers !== undefined) overrides.peers = intFlag('peers', f.peers, 30, 1, 100_000);
  if (f.duration !== undefined) overrides.durationS = intFlag('duration', f.duration, 90, 1, 86_400);
  if (f.seed !== undefined) overrides.seed = intFlag('seed', f.seed, 1, 0, 2 ** 31);
  if (f.policy !== undefined) overrides.policy = f.policy;
  if (f.ladder !== undefined) {
    if (f.ladder !== 'light' && f.ladder !== 'default')
      throw new UsageError('--ladder must be light or default');
    overrides.ladder = f.ladder;
  }
  if (f.profile !== undefined) overrides.profile = f.profile;
  const byteScale = scaleFlag(f['byte-scale']);
  const startBehind =
    f['start-behind'] !== undefined ? intFlag('start-behind', f['start-behind'], 1, 0, 5) : undefined;
  let scenario: Scenario;
  try {
    if (f['scenario-file'] !== undefined) {
      if (f.scenario !== undefined) throw new UsageError('give --scenario or --scenario-file, not both');
      let text: string;
      try {
        // A scenario is a few hundred bytes; anything much larger is not one.
        if (fs.statSync(f['scenario-file']).size > MAX_SCENARIO_FILE_BYTES)
          throw new Error(`larger than ${MAX_SCENARIO_FILE_BYTES} bytes`);
        text = fs.readFileSync(f['scenario-file'], 'utf8');
      } catch (err) {
        throw new UsageError(`--scenario-file: ${(err as Error).message}`);
      }
      scenario = scenarioFromJson(text, overrides);
    } else scenario = scenarioFor(f.scenario ?? 'steady', overrides);
  } catch (err) {
    if (err instanceof ScenarioError) throw new UsageError(err.message);
    throw err;
  }
  if (f['upload-dist'] !== undefined) {
    const name = f['upload-dist'];
    if (!isUploadDist(name))
      throw new UsageError(
        `--upload-dist must be one of ${Object.keys(UPLOAD_DISTS).join(', ')} (got "${name}")`,
      );
    // Multiples of the bitrate the viewers watch (the ladder's top rendition under ABR).
    const ladder = SIM_LADDERS[scenario.ladder];
    const watched = ladder.find((r) => r.name === scenario.rendition) ?? ladder[0]!;
    scenario = { ...scenario, uploadKbps: uploadDistribution(name, watched.videoKbps + watched.audioKbps) };
  }
  const out =
    f.out ??
    path.resolve(
      import.meta.dirname,
      '..',
      'results',
      `sim-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}`,
    );
  const tty = process.stderr.isTTY;
  const result = await simulate(scenario, {
    byteScale,
    ...(startBehind !== undefined && { startBehindSegments: startBehind }),
    ...(f['no-relay'] === true && { relay: false }),
    progress: (p) => {
      const frac = Math.min(1, p.atS / scenario.durationS);
      const bar = '█'.repeat(Math.round(frac * 30)).padEnd(30, '·');
      const line = `sim ${bar} ${p.atS}/${scenario.durationS} s, ${p.viewers} viewers, offload ${(p.offload * 100).toFixed(1)} %, stalls ${p.stalls}`;
      if (tty) process.stderr.write(`\r\x1b[2K${line}`);
      else if (p.atS % 10 === 0) process.stderr.write(`${line}\n`);
    },
  });
  if (tty) process.stderr.write('\n');
  const fig = figures(result);
  fs.mkdirSync(out, { recursive: true });
  const { viewers, ticks, spreads, tracker, scenario: sc, run, network } = result;
  fs.writeFileSync(
    path.join(out, 'report.json'),
    `${JSON.stringify({ scenario: sc, figures: fig, run, network, ticks, tracker, viewers, spreads: spreads.length }, (_k, v: unknown) => (v === Infinity ? 'unlimited' : v), 2)}\n`,
  );
  fs.writeFileSync(path.join(out, 'report.md'), markdown(result, fig));
  for (const [name, svg] of Object.entries(plots(result))) fs.writeFileSync(path.join(out, name), svg);
  process.stderr.write(`report: ${path.relative(process.cwd(), path.join(out, 'report.md'))}\n`);
  process.stdout.write(`${summaryLine(result, fig)}\n`);
}
