/**
 * The channel directory: registrations (signed by the channel's key and pinned to it, see
 * ownership.ts), channel info and stats as the REST API and dashboards see them, the origin's byte
 * counters, expiry of channels that never went live, and batched directory pushes to watchers.
 * Transport-independent: the gateway that pushes is injected.
 */
import createDebug from 'debug';
import type { ChannelInfo, ChannelRegistration, ChannelStats, OriginCounters } from '../protocol/index.ts';
import type { ChannelOwnership } from './ownership.ts';
import { Refusal } from './refusal.ts';
import type { StatsKeeper } from './stats.ts';
import type { ChannelRecord, TrackerStore } from './store.ts';

const debug = createDebug('peertv:tracker:directory');
/** Directory changes are pushed to watchers at most this often, batched. */
const DIRECTORY_PUSH_MS = 250;

export interface DirectoryDeps {
  store: TrackerStore;
  stats: StatsKeeper;
  ownership: ChannelOwnership;
  /** A channel forgotten after this long without a registration, unless it ever went live. */
  idleChannelTtlMs: number;
  /** Whether anyone watches the directory (pushes are skipped otherwise). */
  watched(): boolean;
  pushDirectory(delta: { upsert: ChannelInfo[]; remove: string[] }): void;
  /** A channel's info changed (its viewers are told). */
  channelChanged(info: ChannelInfo): void;
  /** Whether the channel's source is connected. */
  hasSource(id: string): boolean;
  registered(id: string): void;
  expired(id: string): void;
}

export class ChannelDirectory {
  readonly #deps: DirectoryDeps;
  /** Channels whose directory entry changed since the last directory push (coalesced). */
  readonly #changed = new Set<string>();
  #pushTimer: NodeJS.Timeout | undefined;
  readonly #startedAt = Date.now();
  #destroyed = false;

  constructor(deps: DirectoryDeps) {
    this.#deps = deps;
  }

  async channelInfo(id: string): Promise<ChannelInfo | undefined> {
    const rec = await this.#deps.store.getChannel(id);
    if (!rec) return undefined;
    return this.#info(id, rec);
  }

  async #info(id: string, rec: ChannelRecord): Promise<ChannelInfo> {
    const { stats, store } = this.#deps;
    const r = rec.registration;
    const current = stats.current(id);
    const peers = await store.channelPeers(id);
    return {
      id,
      title: r.title,
      status: r.status,
      originUrl: r.originUrl,
      publicKey: r.publicKey,
      segmentDurationS: r.segmentDurationS,
      renditions: r.renditions,
      livePlaylist: r.livePlaylist,
      recordings: r.recordings,
      viewers: peers.filter((p) => p.mode === 'viewer').length,
      offload: current?.offload ?? null,
      offloadWindowS: stats.opts.offloadWindowMs / 1000,
    };
  }

  async list(): Promise<ChannelInfo[]> {
    const out: ChannelInfo[] = [];
    for (const [id, rec] of await this.#deps.store.listChannels()) out.push(await this.#info(id, rec));
    return out;
  }

  /** Stats of a channel with its last `historyLength` samples (all kept when not given). */
  async channelStats(id: string, historyLength?: number): Promise<ChannelStats | undefined> {
    const { stats, store } = this.#deps;
    if (!(await store.getChannel(id))) return undefined;
    const full = stats.history(id);
    const history = historyLength === undefined ? full : full.slice(-historyLength);
    const current = history.at(-1) ?? {
      at: Date.now(),
      viewers: 0,
      httpBytes: 0,
      p2pBytes: 0,
      uploadedBytes: 0,
      originSegmentBytes: null,
      offload: null,
      downloadKbps: 0,
      uploadKbps: 0,
    };
    return {
      channel: id,
      offloadWindowS: stats.opts.offloadWindowMs / 1000,
      current,
      history,
      overlay: await stats.overlay(id),
    };
  }

  /**
   * Registers or updates a channel. The registration must be signed by the channel's key; the first one
   * accepted pins the channel id to that key, durably (see {@link ChannelOwnership}).
   */
  async register(reg: ChannelRegistration, ip: string): Promise<void> {
    const { store, ownership } = this.#deps;
    const { claimed } = await ownership.accept(reg, ip);
    const { protocolVersion: _v, signature: _s, signedAtMs: _t, ...registration } = reg;
    const existing = await store.getChannel(reg.channel);
    const now = Date.now();
    await store.putChannel(reg.channel, {
      registration,
      origin: existing?.origin ?? null,
      originBase: existing?.originBase ?? null,
      registeredAt: existing?.registeredAt ?? now,
      updatedAt: now,
    });
    if (claimed) debug('channel %s claimed by key %s from %s', reg.channel, reg.publicKey, ip);
    const info = await this.channelInfo(reg.channel);
    if (info) this.#deps.channelChanged(info);
    this.#changedNow(reg.channel);
    this.#deps.registered(reg.channel);
  }

  /** The origin's byte counters, from the channel's source. */
  async originCounters(id: string, counters: OriginCounters): Promise<void> {
    const { store } = this.#deps;
    const rec = await store.getChannel(id);
    if (!rec) throw new Refusal('unknown-channel', 'channel vanished');
    // Offload counts from the first report on; if the origin restarted (counters went back), keep the
    // running total continuous.
    if (rec.originBase === null) rec.originBase = counters.segmentBytes;
    else if (rec.origin && counters.segmentBytes < rec.origin.segmentBytes)
      rec.originBase -= rec.origin.segmentBytes;
    rec.origin = counters;
    await store.putChannel(id, rec);
  }

  /**
   * A channel that never went live is forgotten (entry and pin) once its source is gone and it was
   * not registered again for `idleChannelTtlMs`: claims that lead nowhere do not pile up.
   */
  async expireIdle(): Promise<void> {
    const { store, stats, ownership } = this.#deps;
    const cutoff = Date.now() - this.#deps.idleChannelTtlMs;
    for (const [id, pin] of await store.listPins()) {
      if (pin.everLive || this.#deps.hasSource(id)) continue;
      const rec = await store.getChannel(id);
      if (Math.max(rec?.updatedAt ?? 0, pin.pinnedAtMs, this.#startedAt) > cutoff) continue;
      await store.deleteChannel(id);
      stats.forget(id);
      await ownership.release(id);
      this.#changedNow(id);
      this.#deps.expired(id);
      debug('channel %s expired (never went live)', id);
    }
  }

  /** Watchers get the entries that changed, batched (never the whole directory per change). */
  #changedNow(id: string): void {
    if (this.#destroyed) return;
    this.#changed.add(id);
    this.#pushTimer ??= setTimeout(() => void this.#push(), DIRECTORY_PUSH_MS);
  }

  async #push(): Promise<void> {
    this.#pushTimer = undefined;
    if (this.#destroyed) return;
    const ids = [...this.#changed];
    this.#changed.clear();
    if (!this.#deps.watched()) return;
    const upsert: ChannelInfo[] = [];
    const remove: string[] = [];
    for (const id of ids) {
      const info = await this.channelInfo(id);
      if (info) upsert.push(info);
      else remove.push(id);
    }
    if (!this.#destroyed) this.#deps.pushDirectory({ upsert, remove });
  }

  /** Stops pushing. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    clearTimeout(this.#pushTimer);
    this.#changed.clear();
  }
}
