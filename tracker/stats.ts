/**
 * Per-channel statistics: viewers, HTTP/P2P/origin bytes, offload over time, upload traffic, who feeds
 * whom. This is the one place the channel's offload is computed; the directory (channel cards, the watch
 * page), the dashboard and `/metrics` all show this figure.
 */
import { OFFLOAD_WINDOW_MS, type ChannelStatsSample, type OverlaySnapshot } from '../protocol/index.ts';
import type { TrackerStore } from './store.ts';

export interface StatsOptions {
  /** Samples kept per channel. */
  historyLength: number;
  /** Offload is computed over this trailing window. */
  offloadWindowMs: number;
  /**
   * Upload traffic is the growth of the peers' uploaded bytes over this trailing window (a few report
   * intervals: peers report their counters every few seconds, so a shorter one would be lumpy).
   */
  rateWindowMs: number;
  /** Peers drawn at most in an overlay snapshot (the dashboard's graph). */
  maxSnapshotPeers: number;
}

export const DEFAULT_STATS: StatsOptions = {
  historyLength: 900,
  offloadWindowMs: OFFLOAD_WINDOW_MS,
  rateWindowMs: 10_000,
  maxSnapshotPeers: 300,
};

interface ChannelSeries {
  history: ChannelStatsSample[];
}

export class StatsKeeper {
  readonly #series = new Map<string, ChannelSeries>();

  readonly opts: StatsOptions;

  constructor(
    private readonly store: TrackerStore,
    opts: Partial<StatsOptions> = {},
  ) {
    this.opts = { ...DEFAULT_STATS, ...opts };
  }

  /** Channels that got a new sample in the last `sample()`. */
  readonly #changed = new Set<string>();

  /** Takes a sample of every channel (called on a timer). */
  async sample(now = Date.now()): Promise<void> {
    this.#changed.clear();
    for (const [id, rec] of await this.store.listChannels()) {
      const peers = await this.store.channelPeers(id);
      const departed = await this.store.departed(id);
      let httpBytes = departed.httpBytes;
      let p2pBytes = departed.p2pBytes;
      let uploadedBytes = departed.uploadedBytes;
      let downloadKbps = 0;
      let viewers = 0;
      const series: ChannelSeries = this.#series.get(id) ?? { history: [] };
      for (const p of peers) {
        if (p.mode === 'viewer') viewers++;
        const r = p.report;
        if (!r) continue;
        httpBytes += r.httpBytes;
        p2pBytes += r.p2pBytes;
        uploadedBytes += r.uploadedBytes;
        downloadKbps += r.downloadKbps;
      }
      const origin = rec.origin && rec.originBase !== null ? rec.origin.segmentBytes - rec.originBase : null;
      const sample: ChannelStatsSample = {
        at: now,
        viewers,
        httpBytes,
        p2pBytes,
        uploadedBytes,
        originSegmentBytes: origin,
        offload: null,
        downloadKbps,
        uploadKbps: 0,
      };
      sample.offload = offloadOver(series.history, sample, this.opts.offloadWindowMs);
      sample.uploadKbps = uploadRateOver(series.history, sample, this.opts.rateWindowMs);
      // A channel nobody watches costs one sample, not one per interval (thousands of idle channels
      // must not fill the tracker's memory): an unchanged idle sample is not kept again.
      const last = series.history.at(-1);
      if (peers.length === 0 && last && sameIdle(last, sample)) {
        this.#series.set(id, series);
        continue;
      }
      series.history.push(sample);
      this.#changed.add(id);
      if (series.history.length > this.opts.historyLength) series.history.shift();
      this.#series.set(id, series);
    }
  }

  /** Did the last `sample()` add a sample for `channel` (idle channels do not get one every time)? */
  changed(channel: string): boolean {
    return this.#changed.has(channel);
  }

  current(channel: string): ChannelStatsSample | undefined {
    return this.#series.get(channel)?.history.at(-1);
  }

  history(channel: string): ChannelStatsSample[] {
    return [...(this.#series.get(channel)?.history ?? [])];
  }

  async overlay(channel: string, now = Date.now()): Promise<OverlaySnapshot> {
    const all = await this.store.channelPeers(channel);
    // First tier first, so a capped drawing always shows the peers next to the origin.
    const peers = [...all]
      .sort((a, b) => Number(b.firstTier) - Number(a.firstTier))
      .slice(0, this.opts.maxSnapshotPeers);
    const shown = new Set(peers.map((p) => p.id));
    const links: [string, string][] = [];
    for (const p of peers)
      for (const q of await this.store.linksOf(p.id)) if (p.id < q && shown.has(q)) links.push([p.id, q]);
    const flows: OverlaySnapshot['flows'] = [];
    for (const p of peers)
      for (const [from, bytes] of Object.entries(p.flowsIn))
        if (bytes > 0 && shown.has(from)) flows.push({ from, to: p.id, bytes });
    return {
      channel,
      at: now,
      totalPeers: all.length,
      peers: peers.map((p) => ({
        id: p.id,
        kind: p.kind,
        mode: p.mode,
        rendition: p.rendition,
        natType: p.natType,
        uploadKbps: p.report?.uploadKbps ?? p.uploadKbps,
        downloadKbps: p.report?.downloadKbps ?? 0,
        uploadedBytes: p.report?.uploadedBytes ?? 0,
        bufferS: p.report?.bufferS ?? 0,
        firstTier: p.firstTier,
      })),
      links,
      flows,
    };
  }

  /** Forgets a channel that left the directory. */
  forget(channel: string): void {
    this.#series.delete(channel);
    this.#changed.delete(channel);
  }
}

/**
 * Offload over the trailing window: 1 − origin segment bytes / segment bytes received by peers (from
 * the origin or from each other), from the origin's own counters when the source reports them, else
 * from peers' own HTTP/P2P split. Clamped to [0, 1] (viewers outside the swarm, e.g. plain HLS players,
 * also load the origin).
 */
export function offloadOver(
  history: readonly ChannelStatsSample[],
  now: ChannelStatsSample,
  windowMs: number,
) {
  // Baseline: the newest sample at least a window old; while the history is younger, the start (zero).
  let base: Pick<ChannelStatsSample, 'httpBytes' | 'p2pBytes' | 'originSegmentBytes'> = {
    httpBytes: 0,
    p2pBytes: 0,
    originSegmentBytes: 0,
  };
  for (let i = history.length - 1; i >= 0; i--)
    if (history[i]!.at <= now.at - windowMs) {
      base = history[i]!;
      break;
    }
  const consumed = now.httpBytes + now.p2pBytes - (base.httpBytes + base.p2pBytes);
  if (consumed <= 0) return null;
  let ratio: number;
  if (now.originSegmentBytes !== null && base.originSegmentBytes !== null)
    ratio = 1 - (now.originSegmentBytes - base.originSegmentBytes) / consumed;
  else ratio = (now.p2pBytes - base.p2pBytes) / consumed;
  return Math.min(1, Math.max(0, ratio));
}

/**
 * Upload traffic (kbit/s): how much the peers' uploaded-byte counters grew since the newest sample at
 * least `windowMs` old (the oldest one while the history is younger), per second. 0 without an earlier
 * sample; never negative (a counter that went back, e.g. a peer's report lost when it left, counts 0).
 */
export function uploadRateOver(
  history: readonly ChannelStatsSample[],
  now: Pick<ChannelStatsSample, 'at' | 'uploadedBytes'>,
  windowMs: number,
): number {
  let base: ChannelStatsSample | undefined;
  for (let i = history.length - 1; i >= 0; i--) {
    base = history[i]!;
    if (base.at <= now.at - windowMs) break;
  }
  if (!base || now.at <= base.at) return 0;
  const bytes = Math.max(0, now.uploadedBytes - base.uploadedBytes);
  return Math.round((bytes * 8) / (now.at - base.at));
}

/** Two samples of a channel without viewers that say the same thing. */
function sameIdle(a: ChannelStatsSample, b: ChannelStatsSample): boolean {
  return (
    a.viewers === 0 &&
    b.viewers === 0 &&
    a.httpBytes === b.httpBytes &&
    a.p2pBytes === b.p2pBytes &&
    a.uploadedBytes === b.uploadedBytes &&
    a.originSegmentBytes === b.originSegmentBytes &&
    a.downloadKbps === b.downloadKbps &&
    a.uploadKbps === b.uploadKbps
  );
}
