/**
 * The cost of a Chandelier plan (tracker/chandelier.ts) as the swarm grows: CPU time per round for one
 * rendition's swarm of N peers, each round fed the previous round's parents (as the policy does), on
 * a synthetic swarm: capacities from the heterogeneous scenario's classes, a share of symmetric NATs,
 * the rest spread over the other types. The target: a round for 10 000 peers in ≤ 100 ms of CPU.
 *
 *   npm run bench:chandelier -- [--peers 1000,3000,10000] [--rounds 10] [--symmetric 0.2] [--seed N]
 *
 * Writes results/chandelier-<time>/{result.json,report.md}; the last line is a summary.
 */
import fs from 'node:fs';
import path from 'node:path';
import { intFlag, parseFlags, UsageError } from '../../cli/args.ts';
import { NAT_TYPES, type NatType } from '../../protocol/index.ts';
import { Rng } from '../../sim/index.ts';
import { planRendition, type ChandelierPeer } from '../../tracker/index.ts';
import { checkFlags, progress, progressDone, quantile, resultsDir } from './lib/stats.ts';

const BENCH = 'bench:chandelier';
const BITRATE_KBPS = 1300; // the light ladder's 480p
/** Upload capacity classes (kbit/s) and their shares: the simulator's heterogeneous scenario. */
const CLASSES = [
  { share: 0.3, kbps: 512 },
  { share: 0.4, kbps: 2000 },
  { share: 0.2, kbps: 10_000 },
  { share: 0.1, kbps: 50_000 },
];

const f = checkFlags(BENCH, () => {
  const { values } = parseFlags(process.argv.slice(2), {
    peers: { type: 'string' },
    rounds: { type: 'string' },
    symmetric: { type: 'string' },
    seed: { type: 'string' },
  });
  const symmetric = Number(values.symmetric ?? '0.2');
  if (!(symmetric >= 0 && symmetric <= 1)) throw new UsageError('--symmetric must be a share in [0, 1]');
  return {
    peers: (values.peers ?? '1000,3000,10000').split(',').map((p) => intFlag('peers', p, 1000, 1, 1_000_000)),
    rounds: intFlag('rounds', values.rounds, 10, 2, 1000),
    symmetric,
    seed: intFlag('seed', values.seed, 1, 0, 2 ** 31),
  };
});

function swarm(n: number, rng: Rng): ChandelierPeer[] {
  const others = NAT_TYPES.filter((t) => t !== 'symmetric' && t !== 'udp-blocked');
  return Array.from({ length: n }, (_, i) => {
    let u = rng.next();
    const cls = CLASSES.find((c) => (u -= c.share) < 0) ?? CLASSES.at(-1)!;
    const natType: NatType =
      rng.next() < f.symmetric ? 'symmetric' : others[Math.floor(rng.next() * others.length)]!;
    return { id: `p${i}`, natType, uploadKbps: cls.kbps, joinedAt: i };
  });
}

interface Row {
  peers: number;
  firstMs: number;
  medianMs: number;
  maxMs: number;
  firstTier: number;
  depth: number;
  keptShare: number;
}

const rows: Row[] = [];
for (const n of f.peers) {
  let peers = swarm(n, new Rng(f.seed));
  const ms: number[] = [];
  let last: ReturnType<typeof planRendition> | undefined;
  let kept = 0;
  for (let r = 0; r < f.rounds; r++) {
    progress(`${BENCH}: ${n} peers, round ${r + 1}/${f.rounds}`);
    const started = process.cpuUsage();
    last = planRendition(peers, BITRATE_KBPS);
    const used = process.cpuUsage(started);
    ms.push((used.user + used.system) / 1000);
    kept = last.kept;
    const plan = last;
    peers = peers.map((p) => ({ ...p, parent: plan.parents.get(p.id)?.[0] }));
  }
  const rest = ms.slice(1).sort((a, b) => a - b);
  rows.push({
    peers: n,
    firstMs: ms[0]!,
    medianMs: quantile(rest, 0.5),
    maxMs: rest.at(-1)!,
    firstTier: last!.firstTier.size,
    depth: last!.depth,
    keptShare: kept / Math.max(1, last!.parents.size),
  });
}
progressDone();

const table = [
  '| peers | first round (cold) | later rounds median / max | first tier | depth | parents kept |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.peers} | ${r.firstMs.toFixed(1)} ms | ${r.medianMs.toFixed(1)} / ${r.maxMs.toFixed(1)} ms | ${r.firstTier} | ${r.depth} | ${(r.keptShare * 100).toFixed(0)} % |`,
  ),
].join('\n');
const out = resultsDir('chandelier');
fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify({ flags: f, rows }, null, 2));
fs.writeFileSync(
  path.join(out, 'report.md'),
  `# Chandelier: CPU per plan (${new Date().toISOString()})\n\n` +
    `One rendition at ${BITRATE_KBPS} kbit/s; ${f.symmetric * 100} % symmetric NATs; ${f.rounds} rounds each, each fed the previous round's parents.\n\n${table}\n`,
);
process.stdout.write(`${table}\n\nreport: ${path.relative(process.cwd(), out)}/report.md\n`);
const big = rows.at(-1)!;
process.stdout.write(
  `peers=${big.peers} plan_ms_median=${big.medianMs.toFixed(1)} plan_ms_max=${big.maxMs.toFixed(1)} first_ms=${big.firstMs.toFixed(1)} first_tier=${big.firstTier} depth=${big.depth}\n`,
);
