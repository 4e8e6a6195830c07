/**
 * `npm run bench:natlab [-- --reps 5]` (needs root: it builds the NAT lab of test/natlab/lab.ts).
 *
 * Time to connect for each NAT pair in the lab: two `peertv peer` viewers on hosts behind NATs of the
 * given behaviours join the lab's channel (our STUN server, coturn for TURN, the tracker, a small
 * test-pattern source); the figure is the offerer's time from creating the link to the open data
 * channel (ICE gathering, signaling through the tracker, connectivity checks, DTLS, SCTP), and the
 * route ICE selected (direct or relayed). Then the pair that cannot connect at all (symmetric NATs
 * with TURN blocked): how long until each plays, from the origin.
 * Writes results/natlab-<time>/{result.json,report.md,connect.svg}; prints a summary line last.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  LAB_HOSTS,
  NAT_TYPE_OF,
  NatLab,
  ROUTE_SETTLE_MS,
  joinedPeerId,
  natLabUnavailable,
  routesTo,
  startLabServices,
  startLabViewer,
  startupS,
  type NatKind,
  type Running,
} from '../natlab/lab.ts';
import { intFlag, parseFlags } from '../../cli/args.ts';
import { checkFlags, progress, progressDone, quantile, resultsDir } from './lib/stats.ts';
import { barSvg } from '../../sim/index.ts';

const { reps, fallbackReps } = checkFlags('bench:natlab', () => {
  const { values: v } = parseFlags(process.argv.slice(2), {
    reps: { type: 'string' },
    'fallback-reps': { type: 'string' },
  });
  if (v.help) {
    console.log('Usage: npm run bench:natlab -- [--reps N (default 5)] [--fallback-reps N (default 2)]');
    process.exit(0);
  }
  return {
    reps: intFlag('reps', v.reps, 5, 1, 50),
    fallbackReps: intFlag('fallback-reps', v['fallback-reps'], 2, 0, 50),
  };
});
const unavailable = natLabUnavailable();
if (unavailable) {
  console.error(`bench:natlab: cannot build the lab here: ${unavailable}`);
  process.exit(1);
}

const PAIRS: [string, string][] = [
  ['A', 'E'],
  ['A', 'B'],
  ['B', 'C'],
  ['A', 'C'],
  ['C', 'D'],
];
const SHORT: Record<NatKind, string> = {
  'port-restricted': 'port-restr.',
  'full-cone': 'full cone',
  symmetric: 'symmetric',
};
const nat = (h: string) => LAB_HOSTS.find((x) => x.name === h)!;
const pairLabel = ([a, b]: [string, string]) => `${SHORT[nat(a).nat]} ↔ ${SHORT[nat(b).nat]}`;

/** Every route a peer reported for its link to `other`: the first when it opened, then each switch. */
const routes = (p: Running, other: Running) =>
  routesTo(p, joinedPeerId(other)).map((r) => ({ ...r, route: `${r.local} ↔ ${r.remoteType}` }));

const out = resultsDir('natlab');
const startedAt = Date.now();
progress('building the lab and starting STUN, coturn, tracker and source…');
const lab = await NatLab.create([...LAB_HOSTS]);
let stopping = false;
const cleanup = async () => {
  if (stopping) return;
  stopping = true;
  await services?.stop();
  await lab.destroy();
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
let services: Awaited<ReturnType<typeof startLabServices>> | undefined;

interface Sample {
  pair: string;
  hosts: string;
  rep: number;
  connectMs: number | null;
  /** The pair selected when the channel opened (offerer's view). */
  firstRoute: string | null;
  /** The pair in use once ICE settled. */
  route: string | null;
  relayed: boolean | null;
  /** ICE switched pairs after the channel opened. */
  switched: boolean;
}
const samples: Sample[] = [];
const fallback: { rep: number; startupS: number[]; linked: boolean }[] = [];

const viewer = (host: string) =>
  startLabViewer(lab, host, ['--nat-type', NAT_TYPE_OF[nat(host).nat], '--status-interval', '0']);

try {
  services = await startLabServices(lab);
  for (const pair of PAIRS) {
    for (let rep = 1; rep <= reps; rep++) {
      progress(`connect ${pairLabel(pair)} (${pair.join('-')}) ${rep}/${reps}`);
      const [a, b] = pair.map(viewer) as [Running, Running];
      try {
        await Promise.all([a, b].map((p) => p.waitFor(/^joined \S+ as \S+$/m, 20_000, 'join')));
        const deadline = Date.now() + 25_000;
        while (Date.now() < deadline && !(routes(a, b).length && routes(b, a).length))
          await new Promise((r) => setTimeout(r, 100));
        // Let ICE settle (a relayed pair may win the race, then a direct one takes over).
        if (routes(a, b).length && routes(b, a).length)
          await new Promise((r) => setTimeout(r, ROUTE_SETTLE_MS));
        const ra = routes(a, b);
        const rb = routes(b, a);
        // The offerer's figure is the longer one: from creating the offer to the open channel.
        const [offerer] = [ra, rb]
          .filter((r) => r.length > 0)
          .sort((x, y) => y[0]!.connectMs! - x[0]!.connectMs!);
        samples.push({
          pair: pairLabel(pair),
          hosts: pair.join('-'),
          rep,
          connectMs: ra.length && rb.length ? offerer![0]!.connectMs! : null,
          firstRoute: offerer ? `${offerer[0]!.route}${offerer[0]!.relayed ? ' (TURN)' : ''}` : null,
          route: offerer ? offerer.at(-1)!.route : null,
          relayed: offerer ? offerer.at(-1)!.relayed : null,
          switched: offerer ? offerer.length > 1 : false,
        });
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    }
  }
  // No path at all: symmetric NATs with TURN blocked at both routers.
  for (const h of ['C', 'D']) lab.blockTurn(h, true);
  for (let rep = 1; rep <= fallbackReps; rep++) {
    progress(`no path (C-D, TURN blocked) ${rep}/${fallbackReps}`);
    const peers = ['C', 'D'].map(viewer);
    try {
      const startup = await Promise.all(peers.map((p) => startupS(p)));
      await new Promise((r) => setTimeout(r, 3000));
      fallback.push({
        rep,
        startupS: startup,
        linked: peers.some((p) => /^peer \S+ connected in/m.test(p.output)),
      });
    } finally {
      await Promise.all(peers.map((p) => p.stop()));
    }
  }
} finally {
  progressDone();
  await cleanup();
}

// ---- report ----
const rows = PAIRS.map((pair) => {
  const s = samples.filter((x) => x.hosts === pair.join('-'));
  const ok = s.filter((x) => x.connectMs !== null).map((x) => x.connectMs!);
  const routes = [...new Set(s.map((x) => x.route ?? 'no connection'))];
  return {
    pair: pairLabel(pair),
    hosts: pair.join('-'),
    connected: ok.length,
    tries: s.length,
    relayed: s.filter((x) => x.relayed).length,
    switched: s.filter((x) => x.switched).length,
    firstRoutes: [...new Set(s.filter((x) => x.switched).map((x) => x.firstRoute!))],
    routes,
    p50Ms: quantile(ok, 0.5),
    p95Ms: quantile(ok, 0.95),
    maxMs: ok.length ? Math.max(...ok) : NaN,
  };
});
const fmt = (v: number) => (Number.isFinite(v) ? String(Math.round(v)) : '–');
// Connect times by the pair the channel opened on (a switch to a direct pair comes after opening).
const openedRelayed = (x: Sample) => x.firstRoute?.endsWith('(TURN)') ?? false;
const direct = samples.filter((x) => x.connectMs !== null && !openedRelayed(x)).map((x) => x.connectMs!);
const relayed = samples.filter((x) => x.connectMs !== null && openedRelayed(x)).map((x) => x.connectMs!);
const fallbackStartups = fallback.flatMap((f) => f.startupS);
const result = {
  when: new Date(startedAt).toISOString(),
  durationS: Math.round((Date.now() - startedAt) / 1000),
  reps,
  hosts: LAB_HOSTS,
  rows,
  samples,
  fallback,
  summary: {
    directP50Ms: quantile(direct, 0.5),
    relayedP50Ms: quantile(relayed, 0.5),
    fallbackStartupMaxS: fallbackStartups.length ? Math.max(...fallbackStartups) : NaN,
  },
};
fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify(result, null, 2));
fs.writeFileSync(
  path.join(out, 'connect.svg'),
  barSvg({
    title: 'Time to connect by NAT pair (offerer: new link → open data channel)',
    yLabel: 'ms',
    categories: rows.map((r) => `${r.hosts} ${r.relayed === r.tries ? '(TURN)' : '(direct)'}`),
    series: [
      { label: 'p50', values: rows.map((r) => r.p50Ms) },
      { label: 'p95', values: rows.map((r) => r.p95Ms) },
    ],
  }),
);
const md = [
  '# NAT lab: time to connect by NAT pair',
  '',
  `${new Date(startedAt).toISOString()}, ${reps} connections per pair, ${result.durationS} s in all. Each`,
  "connection: two fresh `peertv peer` viewers in the lab; the time is the offerer's, from creating the",
  "link to the open data channel (through the tracker's signaling relay). STUN: our server; TURN: coturn.",
  '',
  '| pair | hosts | connected | settled route (offerer: local ↔ remote) | switched after open | p50 ms | p95 ms | max ms |',
  '| --- | --- | ---: | --- | --- | ---: | ---: | ---: |',
  ...rows.map(
    (r) =>
      `| ${r.pair} | ${r.hosts} | ${r.connected}/${r.tries} | ${r.routes.join(', ')}${r.relayed ? ` (TURN ${r.relayed}/${r.tries})` : ''} | ${r.switched ? `${r.switched}× from ${r.firstRoutes.join(', ')}` : '–'} | ${fmt(r.p50Ms)} | ${fmt(r.p95Ms)} | ${fmt(r.maxMs)} |`,
  ),
  '',
  '![time to connect](connect.svg)',
  '',
  '## No path at all (symmetric ↔ symmetric, TURN blocked)',
  '',
  fallback.length
    ? fallback
        .map(
          (f) =>
            `- try ${f.rep}: both played from the origin after ${f.startupS.map((s) => `${s.toFixed(2)} s`).join(' and ')}; ${f.linked ? 'a link connected (unexpected)' : 'no link connected'}`,
        )
        .join('\n')
    : '- not measured (--fallback-reps 0)',
  '',
];
fs.writeFileSync(path.join(out, 'report.md'), md.join('\n'));
const table = md.findIndex((l) => l.startsWith('| pair |'));
console.log(md.slice(table, table + 2 + rows.length).join('\n'));
console.log(`report: ${path.relative(process.cwd(), path.join(out, 'report.md'))}`);
console.log(
  `direct_connect_p50_ms=${fmt(result.summary.directP50Ms)} relayed_connect_p50_ms=${fmt(result.summary.relayedP50Ms)} ` +
    `fallback_startup_max_s=${Number.isFinite(result.summary.fallbackStartupMaxS) ? result.summary.fallbackStartupMaxS.toFixed(2) : '–'} ` +
    `pairs=${rows.length} reps=${reps}`,
);
