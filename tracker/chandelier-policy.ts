/**
 * Chandelier as an {@link OverlayPolicy}: the optimizer (chandelier.ts) plans each rendition's swarm
 * in rounds; between rounds, joiners are hung incrementally under a planned peer with a free slot.
 *
 * - **Rounds**: `firstTier` replans the channel when its plan is older than `roundMs` (the tracker
 *   calls it at every rebalance, join and leave; a flash crowd of thousands of joins costs one plan per
 *   `roundMs`, not one per join). Inputs: each peer's capacity (its reports' measured upload, else
 *   declared; see sessions.ts), NAT type, join time, and its parent in the previous plan (kept while
 *   valid). Bitrates: the channel registration's bandwidth of each rendition.
 * - **Between rounds**: a joiner gets the shallowest NAT-compatible planned peer with a free slot
 *   as its parent (and backups); if none, it joins the first tier. Its own declared slots are offered
 *   to later joiners. A first tier left empty by departures is refilled by a replan.
 * - **Links**: `neighboursFor` returns a peer's planned parents first, then random neighbours (the
 *   random policy's) up to the target, so the mesh survives the optimizer's absence; `wantedLinks`
 *   tells the overlay's round which parent links to make.
 */
import type { NatType } from '../protocol/index.ts';
import { connectsDirectly } from '../protocol/index.ts';
import {
  DEFAULT_CHANDELIER,
  planRendition,
  slotsOf,
  type ChandelierOptions,
  type ChandelierPeer,
} from './chandelier.ts';
import type { RandomSource } from './clock.ts';
import { RandomPolicy, type OverlayPolicy, type PolicyContext } from './policy.ts';
import type { PeerRecord } from './store.ts';

export interface ChandelierPolicyOptions extends ChandelierOptions {
  /** A channel's plan is redone when older than this (ms). */
  roundMs: number;
  /** Bitrate assumed for a rendition the registration does not list (kbit/s). */
  defaultBitrateKbps: number;
}

export const DEFAULT_CHANDELIER_POLICY: ChandelierPolicyOptions = {
  ...DEFAULT_CHANDELIER,
  roundMs: 5000,
  defaultBitrateKbps: 2000,
};

/** A planned (or incrementally placed) peer of a rendition. */
interface Placed {
  readonly id: string;
  readonly natType: NatType;
  /** The capacity it was planned with (kbit/s). */
  readonly uploadKbps: number;
  level: number;
  free: number;
  parents: string[];
}

interface ChannelPlan {
  readonly at: number;
  readonly byId: Map<string, Placed>;
  /** Per rendition, peers in level order (suppliers for joiners), and a cursor past full ones. */
  readonly suppliers: Map<string, { list: Placed[]; cursor: number }>;
  readonly tier: Set<string>;
  /** Renditions' bitrates at the plan (kbit/s). */
  readonly bitrates: Map<string, number>;
}

/** A capacity within this fraction of the one planned with last round is taken as unchanged. */
const CAPACITY_HYSTERESIS = 0.3;

/**
 * The capacity to plan a peer with: last round's while the reported one stays within the hysteresis
 * (measured capacities wander; every change of rank can move a peer to another level and rewire it).
 */
function steadyKbps(planned: number | undefined, reported: number): number {
  if (planned === undefined || !(planned > 0) || !(reported > 0)) return reported;
  return Math.abs(reported - planned) <= planned * CAPACITY_HYSTERESIS ? planned : reported;
}

/** A plan not redone for this many rounds belongs to a channel without peers: dropped. */
const STALE_PLAN_ROUNDS = 12;

export class ChandelierPolicy implements OverlayPolicy {
  readonly name = 'chandelier';
  readonly #opts: ChandelierPolicyOptions;
  readonly #random: RandomPolicy;
  readonly #plans = new Map<string, ChannelPlan>();
  /** The last plan made: its channel, size, CPU time and shape (for inspection; tests read it). */
  lastRound: { channel: string; peers: number; cpuMs: number; firstTier: number; depth: number } | undefined;

  constructor(
    opts: Partial<ChandelierPolicyOptions> = {},
    private readonly deps: { now: () => number; random?: RandomSource },
  ) {
    this.#opts = { ...DEFAULT_CHANDELIER_POLICY, ...opts };
    if (!(this.#opts.roundMs >= 0)) throw new RangeError('roundMs must be ≥ 0');
    this.#random = new RandomPolicy({}, deps.random ?? Math.random);
  }

  async neighboursFor(peer: PeerRecord, current: readonly string[], want: number, ctx: PolicyContext) {
    if (want <= 0 || peer.quarantined) return [];
    const plan = this.#plans.get(peer.channel);
    const placed = plan && (plan.byId.get(peer.id) ?? this.#place(plan, peer));
    const picked: string[] = [];
    const seen = new Set(current);
    // Parents even at their cap: the overlay makes room for them (they drop a random link).
    for (const id of placed?.parents ?? []) {
      if (picked.length >= want || seen.has(id)) continue;
      picked.push(id);
      seen.add(id);
    }
    if (picked.length < want)
      picked.push(...(await this.#random.neighboursFor(peer, [...seen], want - picked.length, ctx)));
    return picked;
  }

  async firstTier(peers: readonly PeerRecord[], ctx: PolicyContext) {
    const channel = peers[0]?.channel;
    if (channel === undefined) return new Set<string>();
    let plan = this.#plans.get(channel);
    const present = new Set<string>();
    for (const p of peers) if (!p.quarantined) present.add(p.id);
    if (plan && this.deps.now() - plan.at < this.#opts.roundMs) {
      // Between rounds: joiners not placed yet are placed now; a rendition whose whole first tier
      // left needs a replan.
      for (const p of peers) if (!p.quarantined && !plan.byId.has(p.id)) this.#place(plan, p);
      const renditions = new Set<string>();
      const tiered = new Set<string>();
      for (const p of peers) {
        if (!present.has(p.id)) continue;
        renditions.add(p.rendition);
        if (plan.tier.has(p.id)) tiered.add(p.rendition);
      }
      if ([...renditions].some((r) => !tiered.has(r))) plan = undefined;
    } else plan = undefined;
    if (!plan) {
      plan = await this.#plan(channel, peers, ctx);
      this.#plans.set(channel, plan);
      // A live channel is replanned every round; a plan long left alone is a channel without peers.
      for (const [id, old] of this.#plans)
        if (plan.at - old.at > STALE_PLAN_ROUNDS * this.#opts.roundMs) this.#plans.delete(id);
    }
    const tier = new Set<string>();
    for (const id of plan.tier) if (present.has(id)) tier.add(id);
    return tier;
  }

  /** The links a round should make for `peerId`: its planned parents. */
  wantedLinks(channel: string, peerId: string): readonly string[] {
    return this.#plans.get(channel)?.byId.get(peerId)?.parents ?? [];
  }

  async #plan(channel: string, peers: readonly PeerRecord[], ctx: PolicyContext): Promise<ChannelPlan> {
    const started = process.cpuUsage();
    const previous = this.#plans.get(channel);
    const registration = (await ctx.store.getChannel(channel))?.registration;
    const bitrates = new Map<string, number>();
    for (const r of registration?.renditions ?? []) bitrates.set(r.name, r.bandwidthBps / 1000);
    const groups = new Map<string, ChandelierPeer[]>();
    let planned = 0;
    for (const p of peers) {
      if (p.quarantined) continue;
      planned++;
      let g = groups.get(p.rendition);
      if (!g) groups.set(p.rendition, (g = []));
      const before = previous?.byId.get(p.id);
      g.push({
        id: p.id,
        natType: p.natType,
        uploadKbps: steadyKbps(before?.uploadKbps, p.uploadKbps),
        joinedAt: p.joinedAt,
        parent: before?.parents[0],
        backups: before?.parents.slice(1),
      });
    }
    const plan: ChannelPlan = {
      at: this.deps.now(),
      byId: new Map(),
      suppliers: new Map(),
      tier: new Set(),
      bitrates,
    };
    let depth = 0;
    for (const [rendition, group] of groups) {
      const bitrate = bitrates.get(rendition) ?? this.#opts.defaultBitrateKbps;
      bitrates.set(rendition, bitrate);
      const r = planRendition(group, bitrate, this.#opts);
      depth = Math.max(depth, r.depth);
      const list: Placed[] = [];
      for (const p of group) {
        const placed: Placed = {
          id: p.id,
          natType: p.natType,
          uploadKbps: p.uploadKbps,
          level: r.level.get(p.id)!,
          free: r.slots.get(p.id)! - (r.children.get(p.id) ?? 0),
          parents: [...(r.parents.get(p.id) ?? [])],
        };
        plan.byId.set(p.id, placed);
        list.push(placed);
        if (r.firstTier.has(p.id)) plan.tier.add(p.id);
      }
      list.sort((a, b) => a.level - b.level);
      plan.suppliers.set(rendition, { list, cursor: 0 });
    }
    const used = process.cpuUsage(started);
    this.lastRound = {
      channel,
      peers: planned,
      cpuMs: (used.user + used.system) / 1000,
      firstTier: plan.tier.size,
      depth,
    };
    return plan;
  }

  /** Hangs a joiner under the shallowest compatible planned peer with a free slot (else: first tier). */
  #place(plan: ChannelPlan, peer: PeerRecord): Placed {
    let s = plan.suppliers.get(peer.rendition);
    if (!s) plan.suppliers.set(peer.rendition, (s = { list: [], cursor: 0 }));
    while (s.cursor < s.list.length && s.list[s.cursor]!.free <= 0) s.cursor++;
    let parent: Placed | undefined;
    for (let i = s.cursor; i < s.list.length && !parent; i++) {
      const c = s.list[i]!;
      if (c.free > 0 && connectsDirectly(peer.natType, c.natType)) parent = c;
    }
    const parents: string[] = [];
    if (parent) {
      parent.free--;
      parents.push(parent.id);
      // Backups: the next compatible peers at or above the parent's level.
      for (let i = s.cursor; i < s.list.length && parents.length < this.#opts.parentsPerPeer; i++) {
        const c = s.list[i]!;
        if (c.level > parent.level) break;
        if (c !== parent && connectsDirectly(peer.natType, c.natType)) parents.push(c.id);
      }
    }
    const bitrate = plan.bitrates.get(peer.rendition) ?? this.#opts.defaultBitrateKbps;
    const placed: Placed = {
      id: peer.id,
      natType: peer.natType,
      uploadKbps: peer.uploadKbps,
      level: parent ? parent.level + 1 : 0,
      free: slotsOf(
        { id: peer.id, natType: peer.natType, uploadKbps: peer.uploadKbps, joinedAt: peer.joinedAt },
        bitrate,
        this.#opts,
      ),
      parents,
    };
    plan.byId.set(peer.id, placed);
    if (!parent) plan.tier.add(peer.id);
    // Keep the list in level order: a joiner goes after every peer of its level or above.
    let at = s.list.length;
    while (at > s.cursor && s.list[at - 1]!.level > placed.level) at--;
    s.list.splice(at, 0, placed);
    return placed;
  }
}
