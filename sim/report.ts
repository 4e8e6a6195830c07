/**
 * The simulator's report: the same figures as `npm run bench`, under the same names (offload over the
 * run and in its second half, continuity, stalls and stall time, startup and latency percentiles,
 * origin egress, upload per peer), plus what only a simulator sees at scale: the depth at which each
 * segment reached each peer, how long a segment takes to reach 50 % and 99 % of the peers, and the
 * tracker's work per round. Pure: figures from records; the runner collects the records.
 */
import type { Scenario } from './scenario.ts';
import { histogramSvg, lineSvg } from './svg.ts';

export interface ViewerRecord {
  index: number;
  peerId: string;
  joinedAtMs: number;
  leftAtMs: number | null;
  rendition: string;
  firstTier: boolean;
  natType: string;
  /** Upload capacity given to it (kbit/s; Infinity: unlimited). */
  uploadKbps: number;
  startupMs: number | null;
  /** From joining to the engine started (tracker, channel, playlist), as the bench's `joinS`. */
  joinMs: number | null;
  stalls: number;
  stallMs: number;
  segmentsPlayed: number;
  segmentsOnTime: number;
  seeks: number;
  /** Waiting for seek targets (apart from stalls). */
  seekWaitMs: number;
  httpBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
}

/** Sampled every simulated second. */
export interface SimTick {
  atS: number;
  viewers: number;
  /** Cumulative: segment bytes the origin served; bytes viewers consumed (HTTP + P2P), P2P, uploaded. */
  originSegmentBytes: number;
  consumedBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
  stalls: number;
}

/** How one segment spread: for each viewer that got it, after how long and at which depth. */
export interface SegmentSpread {
  rendition: string;
  mediaSequence: number;
  publishedAtMs: number;
  /** Viewers of its rendition present when it was published and still there 30 s later. */
  audience: number;
  /** Of those, ms from publication to holding it (verified), sorted. */
  reachMs: number[];
}

export interface TrackerRound {
  atS: number;
  /** Requests handled (joins, reports, signals, leaves) and pushes sent during the round. */
  requests: number;
  pushes: number;
}

export interface SimResult {
  scenario: Scenario;
  viewers: ViewerRecord[];
  ticks: SimTick[];
  /** Latency behind the newest published segment, sampled once a second per playing viewer (s). */
  latencyS: number[];
  /** Time to load each segment (demand to verified bytes), by where it came from (ms). */
  httpSegmentMs: number[];
  p2pSegmentMs: number[];
  /** Depth of every (viewer, segment) delivery: 1 from the origin, n + 1 from a neighbour at depth n. */
  depths: number[];
  spreads: SegmentSpread[];
  tracker: TrackerRound[];
  /** Segment bytes the origin served; bytes published per rendition (one copy of each stream). */
  originSegmentBytes: number;
  streamBytes: Record<string, number>;
  /** P2P bytes sent and received over the simulated network (conservation). */
  network: { sentBytes: number; receivedBytes: number; discardedBytes: number; inFlightBytes: number };
  /** `rssMaxBytes`: the process's peak resident memory so far (one run per process: the run's). */
  run: {
    wallS: number;
    rssMaxBytes: number;
    events: number;
    byteScale: number;
    startBehindSegments?: number;
    relay?: false;
  };
}

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

const p50p95 = (v: readonly number[]) => ({ p50: quantile(v, 0.5), p95: quantile(v, 0.95) });
const sum = (v: readonly number[]) => v.reduce((a, b) => a + b, 0);

export function figures(r: SimResult) {
  const v = r.viewers;
  const consumed = sum(v.map((x) => x.httpBytes + x.p2pBytes));
  const offload = consumed > 0 ? 1 - r.originSegmentBytes / consumed : NaN;
  const mid = r.ticks[Math.floor(r.ticks.length / 2)];
  const last = r.ticks.at(-1);
  const steadyOffload =
    mid && last && last.consumedBytes > mid.consumedBytes
      ? 1 - (last.originSegmentBytes - mid.originSegmentBytes) / (last.consumedBytes - mid.consumedBytes)
      : NaN;
  const played = sum(v.map((x) => x.segmentsPlayed));
  const onTime = sum(v.map((x) => x.segmentsOnTime));
  const stallS = sum(v.map((x) => x.stallMs)) / 1000;
  const watchedS = played * r.scenario.segmentDurationS;
  const copies = v.map((x) => x.uploadedBytes / (r.streamBytes[x.rendition] ?? NaN)).filter(Number.isFinite);
  const uploaded = sum(v.map((x) => x.uploadedBytes));
  const topN = Math.max(1, Math.ceil(v.length / 100));
  const topUpload = sum(
    v
      .map((x) => x.uploadedBytes)
      .sort((a, b) => b - a)
      .slice(0, topN),
  );
  const reach = (q: number) =>
    r.spreads.flatMap((s) => {
      const need = Math.ceil(s.audience * q);
      return s.audience > 0 && s.reachMs.length >= need ? [s.reachMs[need - 1]! / 1000] : [];
    });
  const renditions = new Set(v.map((x) => x.rendition).filter(Boolean));
  return {
    viewers: v.length,
    offload,
    steadyOffload,
    physicalLimit: 1 - renditions.size / Math.max(1, v.length),
    originSegmentBytes: r.originSegmentBytes * (1 / r.run.byteScale),
    consumedBytes: consumed * (1 / r.run.byteScale),
    continuity: played ? onTime / played : NaN,
    segmentsPlayed: played,
    stalls: sum(v.map((x) => x.stalls)),
    stallS,
    stalledViewers: v.filter((x) => x.stalls > 0).length,
    rebufferRatio: watchedS > 0 ? stallS / (watchedS + stallS) : NaN,
    startupS: p50p95(v.flatMap((x) => (x.startupMs === null ? [] : [x.startupMs / 1000]))),
    seeks: {
      count: sum(v.map((x) => x.seeks)),
      meanWaitS: sum(v.map((x) => x.seekWaitMs)) / 1000 / Math.max(1, sum(v.map((x) => x.seeks))),
    },
    neverStarted: v.filter((x) => x.startupMs === null && (x.leftAtMs ?? Infinity) - x.joinedAtMs > 10_000)
      .length,
    latencyS: p50p95(r.latencyS),
    joinS: p50p95(v.flatMap((x) => (x.joinMs === null ? [] : [x.joinMs / 1000]))),
    segmentMs: { http: p50p95(r.httpSegmentMs), p2p: p50p95(r.p2pSegmentMs) },
    upload: {
      copiesP50: quantile(copies, 0.5),
      copiesP90: quantile(copies, 0.9),
      copiesP99: quantile(copies, 0.99),
      copiesMax: copies.length ? copies.reduce((a, b) => Math.max(a, b), 0) : NaN,
      /** Share of all P2P upload done by the top 1 % of uploaders. */
      top1PctShare: uploaded > 0 ? topUpload / uploaded : NaN,
      /** Viewers that uploaded nothing. */
      idle: v.filter((x) => x.uploadedBytes === 0).length,
    },
    depth: {
      mean: r.depths.length ? sum(r.depths) / r.depths.length : NaN,
      p50: quantile(r.depths, 0.5),
      p95: quantile(r.depths, 0.95),
      max: r.depths.reduce((a, b) => Math.max(a, b), 0),
    },
    reachS: {
      p50Of50: quantile(reach(0.5), 0.5),
      p50Of99: quantile(reach(0.99), 0.5),
      p95Of99: quantile(reach(0.99), 0.95),
    },
    tracker: {
      requestsPerRoundP50: quantile(
        r.tracker.map((t) => t.requests),
        0.5,
      ),
      requestsPerRoundMax: r.tracker.reduce((a, t) => Math.max(a, t.requests), 0),
      pushesPerRoundP50: quantile(
        r.tracker.map((t) => t.pushes),
        0.5,
      ),
    },
    conservation: {
      networkBalanced:
        r.network.sentBytes === r.network.receivedBytes + r.network.discardedBytes + r.network.inFlightBytes,
    },
    speed: r.run.wallS > 0 ? r.scenario.durationS / r.run.wallS : NaN,
    rssMaxMB: r.run.rssMaxBytes / 2 ** 20,
  };
}

export type SimFigures = ReturnType<typeof figures>;

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : 'n/a');

/** The one-line summary, printed last: the same names as `npm run bench`'s. */
export function summaryLine(r: SimResult, f: SimFigures): string {
  return (
    `offload=${f2(f.offload)} continuity=${f3(f.continuity)} stalls=${f.stalls} startup_p95_s=${f2(f.startupS.p95)} ` +
    `latency_p50_s=${f2(f.latencyS.p50)} peers=${r.scenario.peers} speed=${f2(f.speed)}x scenario=${r.scenario.name} ` +
    `policy=${r.scenario.policy}`
  );
}

export function markdown(r: SimResult, f: SimFigures): string {
  const s = r.scenario;
  const rows: [string, string][] = [
    ['offload (1 − origin segment bytes / bytes consumed)', pct(f.offload)],
    ['offload, second half of the run', `${pct(f.steadyOffload)} (limit ${pct(f.physicalLimit)})`],
    [
      'continuity (segments ready before their deadline)',
      `${f3(f.continuity)} (${f.segmentsPlayed} segments)`,
    ],
    [
      'stalls / stall time / rebuffer ratio',
      `${f.stalls} / ${f.stallS.toFixed(1)} s / ${f3(f.rebufferRatio)}`,
    ],
    ['viewers that stalled', `${f.stalledViewers} of ${f.viewers}`],
    ['seeks / mean wait for the target', `${f.seeks.count} / ${f2(f.seeks.meanWaitS)} s`],
    ['startup p50 / p95', `${f2(f.startupS.p50)} / ${f2(f.startupS.p95)} s`],
    ['latency behind newest segment p50 / p95', `${f2(f.latencyS.p50)} / ${f2(f.latencyS.p95)} s`],
    ['engine start (tracker, channel, playlist) p50 / p95', `${f2(f.joinS.p50)} / ${f2(f.joinS.p95)} s`],
    [
      'segment load HTTP / P2P p50 (p95)',
      `${f0(f.segmentMs.http.p50)} (${f0(f.segmentMs.http.p95)}) / ${f0(f.segmentMs.p2p.p50)} (${f0(f.segmentMs.p2p.p95)}) ms`,
    ],
    [
      'upload per viewer, stream copies p50 / p90 / p99 / max',
      `${f2(f.upload.copiesP50)} / ${f2(f.upload.copiesP90)} / ${f2(f.upload.copiesP99)} / ${f2(f.upload.copiesMax)}`,
    ],
    ['share of upload by the top 1 % of uploaders', pct(f.upload.top1PctShare)],
    ['viewers that uploaded nothing', `${f.upload.idle}`],
    [
      'depth of delivery mean / p50 / p95 / max',
      `${f2(f.depth.mean)} / ${f.depth.p50} / ${f.depth.p95} / ${f.depth.max}`,
    ],
    [
      'time for a segment to reach 50 % / 99 % of viewers (median over segments)',
      `${f2(f.reachS.p50Of50)} / ${f2(f.reachS.p50Of99)} s (p95 of 99 %: ${f2(f.reachS.p95Of99)} s)`,
    ],
    [
      'tracker requests per round p50 / max; pushes p50',
      `${f.tracker.requestsPerRoundP50} / ${f.tracker.requestsPerRoundMax}; ${f.tracker.pushesPerRoundP50}`,
    ],
    ['speed (simulated s per wall s) / memory', `${f2(f.speed)}× / ${f.rssMaxMB.toFixed(0)} MB RSS`],
  ];
  return `# Simulation: ${s.name}, ${s.peers} peers, policy ${s.policy} (seed ${s.seed})

${s.peers} viewers (${s.rendition}) joining over ${s.joinOverS} s, ${s.durationS} simulated s; ${s.ladder} ladder, ${s.segmentDurationS} s segments; churn ${s.churn.kind}${s.profile !== 'none' ? `; profile ${s.profile}` : ''}; ${r.run.events} events in ${r.run.wallS.toFixed(1)} s wall${r.run.byteScale !== 1 ? `; payloads scaled by ${r.run.byteScale} (capacities too)` : ''}${r.run.startBehindSegments !== undefined ? `; viewers start ${r.run.startBehindSegments} segments behind the newest` : ''}${r.run.relay === false ? '; no relays (store and forward)' : ''}.

| figure | value |
|---|---|
${rows.map(([k, val]) => `| ${k} | ${val} |`).join('\n')}

![offload](offload-over-time.svg)

![origin egress](origin-egress.svg)

![upload per viewer](upload-copies.svg)

![depth](depth.svg)

![latency](latency.svg)
`;
}

/** The report's plots, by file name. */
export function plots(r: SimResult): Record<string, string> {
  const t = r.ticks;
  const window = 10;
  const windowed: [number, number][] = [];
  for (let i = window; i < t.length; i++) {
    const c = t[i]!.consumedBytes - t[i - window]!.consumedBytes;
    if (c > 0)
      windowed.push([
        t[i]!.atS,
        100 * (1 - (t[i]!.originSegmentBytes - t[i - window]!.originSegmentBytes) / c),
      ]);
  }
  const egress: [number, number][] = [];
  for (let i = 1; i < t.length; i++)
    egress.push([
      t[i]!.atS,
      ((t[i]!.originSegmentBytes - t[i - 1]!.originSegmentBytes) * 8) / 1000 / r.run.byteScale,
    ]);
  const copies = r.viewers
    .map((x) => x.uploadedBytes / (r.streamBytes[x.rendition] ?? NaN))
    .filter(Number.isFinite);
  return {
    'offload-over-time.svg': lineSvg({
      title: 'Offload over time',
      xLabel: 'simulated s',
      yLabel: '%',
      series: [
        {
          label: 'cumulative',
          points: t
            .filter((x) => x.consumedBytes > 0)
            .map((x) => [x.atS, 100 * (1 - x.originSegmentBytes / x.consumedBytes)]),
        },
        { label: `last ${window} s`, points: windowed },
      ],
    }),
    'origin-egress.svg': lineSvg({
      title: 'Origin egress (segments)',
      xLabel: 'simulated s',
      yLabel: 'kbit/s',
      series: [{ label: 'origin', points: egress }],
    }),
    'upload-copies.svg': histogramSvg({
      title: 'Upload per viewer',
      xLabel: 'stream copies uploaded',
      values: copies,
    }),
    'depth.svg': histogramSvg({
      title: 'Depth at which segments reached viewers',
      xLabel: 'hops from the origin',
      values: r.depths,
      bins: Math.max(
        1,
        Math.min(
          30,
          r.depths.reduce((a, b) => Math.max(a, b), 0),
        ),
      ),
    }),
    'latency.svg': histogramSvg({
      title: 'Latency behind the newest segment',
      xLabel: 's',
      values: r.latencyS,
    }),
  };
}
