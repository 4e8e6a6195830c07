/** Prometheus metrics (prom-client), one registry per tracker. */
import client from 'prom-client';
import type { StatsKeeper } from './stats.ts';
import type { TrackerStore } from './store.ts';

export class TrackerMetrics {
  readonly registry = new client.Registry();
  readonly sockets: client.Gauge;
  readonly joins: client.Counter<'channel'>;
  readonly leaves: client.Counter<'reason'>;
  readonly signals: client.Counter;
  readonly invalid: client.Counter<'event' | 'code'>;
  readonly rateLimited: client.Counter<'event'>;
  readonly quarantined: client.Counter;
  readonly peers: client.Gauge<'channel' | 'kind'>;
  readonly viewers: client.Gauge<'channel'>;
  readonly channelBytes: client.Gauge<'channel' | 'source'>;
  readonly offload: client.Gauge<'channel'>;

  constructor() {
    const r = this.registry;
    client.collectDefaultMetrics({ register: r, prefix: 'peertv_tracker_' });
    this.sockets = new client.Gauge({
      name: 'peertv_tracker_sockets',
      help: 'Connected socket.io clients',
      registers: [r],
    });
    this.joins = new client.Counter({
      name: 'peertv_tracker_joins_total',
      help: 'Peers that joined',
      labelNames: ['channel'],
      registers: [r],
    });
    this.leaves = new client.Counter({
      name: 'peertv_tracker_leaves_total',
      help: 'Peers that left, by reason (leave, disconnect, timeout)',
      labelNames: ['reason'],
      registers: [r],
    });
    this.signals = new client.Counter({
      name: 'peertv_tracker_signals_relayed_total',
      help: 'Signaling messages relayed between peers',
      registers: [r],
    });
    this.invalid = new client.Counter({
      name: 'peertv_tracker_rejected_events_total',
      help: 'Events and requests refused, by event and error code',
      labelNames: ['event', 'code'],
      registers: [r],
    });
    this.rateLimited = new client.Counter({
      name: 'peertv_tracker_rate_limited_total',
      help: 'Events dropped by rate limits',
      labelNames: ['event'],
      registers: [r],
    });
    this.quarantined = new client.Counter({
      name: 'peertv_tracker_quarantined_peers_total',
      help: 'Peers quarantined after complaints from several of their neighbours',
      registers: [r],
    });
    this.peers = new client.Gauge({
      name: 'peertv_tracker_peers',
      help: 'Connected peers by channel and kind',
      labelNames: ['channel', 'kind'],
      registers: [r],
    });
    this.viewers = new client.Gauge({
      name: 'peertv_channel_viewers',
      help: 'Viewers per channel',
      labelNames: ['channel'],
      registers: [r],
    });
    this.channelBytes = new client.Gauge({
      name: 'peertv_channel_bytes',
      help: 'Segment bytes per channel: received by peers over http or p2p, and sent by the origin',
      labelNames: ['channel', 'source'],
      registers: [r],
    });
    this.offload = new client.Gauge({
      name: 'peertv_channel_offload_ratio',
      help: 'Share of segment bytes viewers got without the origin sending them, over the last 30 s',
      labelNames: ['channel'],
      registers: [r],
    });
  }

  /** Refreshes the per-channel gauges from the store and the stats (before each scrape). */
  async collect(store: TrackerStore, stats: StatsKeeper): Promise<void> {
    this.peers.reset();
    this.viewers.reset();
    this.channelBytes.reset();
    this.offload.reset();
    for (const [id] of await store.listChannels()) {
      const peers = await store.channelPeers(id);
      const kinds = new Map<string, number>();
      for (const p of peers) kinds.set(p.kind, (kinds.get(p.kind) ?? 0) + 1);
      for (const [kind, n] of kinds) this.peers.set({ channel: id, kind }, n);
      const s = stats.current(id);
      this.viewers.set({ channel: id }, peers.filter((p) => p.mode === 'viewer').length);
      if (!s) continue;
      this.channelBytes.set({ channel: id, source: 'http' }, s.httpBytes);
      this.channelBytes.set({ channel: id, source: 'p2p' }, s.p2pBytes);
      if (s.originSegmentBytes !== null)
        this.channelBytes.set({ channel: id, source: 'origin' }, s.originSegmentBytes);
      if (s.offload !== null) this.offload.set({ channel: id }, s.offload);
    }
  }
}
