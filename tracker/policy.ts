/**
 * The overlay policy seam: who should connect to whom, and which peers form the first tier that
 * pulls fresh segments from the origin. The baseline is random with caps; Chandelier plugs in here.
 */
import type { RandomSource } from './clock.ts';
import type { PeerRecord, TrackerStore } from './store.ts';

export interface PolicyContext {
  readonly store: TrackerStore;
  readonly maxNeighbours: number;
}

export interface OverlayPolicy {
  readonly name: string;
  /**
   * Peers `peer` should connect to now, in addition to `current` (its existing links).
   * Called at join and when a peer has fewer than the minimum neighbours.
   */
  neighboursFor(
    peer: PeerRecord,
    current: readonly string[],
    want: number,
    ctx: PolicyContext,
  ): Promise<string[]>;
  /** The ids of the peers that pull from the origin, given every peer of a channel. */
  firstTier(peers: readonly PeerRecord[], ctx: PolicyContext): Promise<Set<string>>;
  /**
   * Links the overlay's round should make for a peer (a planning policy's parents), beyond what
   * `neighboursFor` gave at join. Optional: the random policy has none.
   */
  wantedLinks?(channel: string, peerId: string): readonly string[];
}

export interface RandomPolicyOptions {
  /** First-tier peers per rendition: the origin sends about this many copies of each segment. */
  firstTierPerRendition: number;
}

export const DEFAULT_RANDOM_POLICY: RandomPolicyOptions = { firstTierPerRendition: 1 };

/** Baseline: random neighbours of the same rendition with a per-peer cap; first tier chosen at random. */
export class RandomPolicy implements OverlayPolicy {
  readonly name = 'random';
  readonly #opts: RandomPolicyOptions;

  constructor(
    opts: Partial<RandomPolicyOptions> = {},
    /** Picks of the first tier (Math.random by default; the simulator's is seeded). */
    private readonly random: RandomSource = Math.random,
  ) {
    this.#opts = { ...DEFAULT_RANDOM_POLICY, ...opts };
    if (!Number.isInteger(this.#opts.firstTierPerRendition) || this.#opts.firstTierPerRendition < 1)
      throw new RangeError('firstTierPerRendition must be a positive integer');
  }

  async neighboursFor(peer: PeerRecord, current: readonly string[], want: number, ctx: PolicyContext) {
    if (want <= 0 || peer.quarantined) return [];
    const seen = new Set([peer.id, ...current]);
    const picked: string[] = [];
    // Rounds of random candidates; peers at their link cap are skipped and never looked at twice, so a
    // swarm whose peers are mostly full still yields the ones with room.
    for (let round = 0; round < 8 && picked.length < want; round++) {
      const batch = await ctx.store.samplePeers(peer.channel, (want - picked.length) * 4, (p) => {
        if (seen.has(p.id)) return false;
        seen.add(p.id);
        return p.rendition === peer.rendition && !p.quarantined;
      });
      if (batch.length === 0) break;
      for (const c of batch) {
        if (picked.length >= want) break;
        if ((await ctx.store.linksOf(c.id)).length < ctx.maxNeighbours) picked.push(c.id);
      }
    }
    return picked;
  }

  async firstTier(peers: readonly PeerRecord[]) {
    const byRendition = new Map<string, PeerRecord[]>();
    for (const p of peers) {
      if (p.quarantined) continue; // a peer its neighbours complained about pulls nothing for anyone
      const list = byRendition.get(p.rendition) ?? [];
      list.push(p);
      byRendition.set(p.rendition, list);
    }
    const tier = new Set<string>();
    for (const list of byRendition.values()) {
      // Stability: keep the current first tier while it is there; fill up at random.
      const keep = list.filter((p) => p.firstTier).slice(0, this.#opts.firstTierPerRendition);
      const rest = list.filter((p) => !p.firstTier);
      while (keep.length < this.#opts.firstTierPerRendition && rest.length > 0)
        keep.push(rest.splice(Math.floor(this.random() * rest.length), 1)[0]!);
      for (const p of keep) tier.add(p.id);
    }
    return tier;
  }
}
