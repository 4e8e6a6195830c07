/**
 * Runs the {@link OverlayPolicy}: neighbours for a peer that joins or switches rendition, the first tier
 * of a channel, and each round's rebalancing (first tiers revisited, peers that lost neighbours topped
 * up). It changes links in the store and says whom to tell through `notify`; it never talks to a peer.
 */
import type { OverlayPolicy, PolicyContext } from './policy.ts';
import type { PeerRecord, TrackerStore } from './store.ts';

export interface OverlayOptions {
  /** Neighbours recommended per peer, and the cap on links per peer. */
  targetNeighbours: number;
  maxNeighbours: number;
}

/** Queues a `neighbours` push to a peer (its first-tier flag goes with it, even with no changes). */
export type NotifyNeighbours = (peerId: string, add: string[], remove: string[]) => void;

export class Overlay {
  readonly #ctx: PolicyContext;
  /** The parents each peer was last told (a planning policy's), to push only changes. */
  #parentsTold = new Map<string, string>();

  constructor(
    readonly store: TrackerStore,
    readonly policy: OverlayPolicy,
    readonly opts: OverlayOptions,
    private readonly notify: NotifyNeighbours,
  ) {
    if (opts.targetNeighbours > opts.maxNeighbours)
      throw new RangeError('targetNeighbours must not exceed maxNeighbours');
    this.#ctx = { store, maxNeighbours: opts.maxNeighbours };
  }

  /**
   * Links a peer without neighbours (it just joined, or starts over in another rendition) to fresh ones
   * and returns them. The new neighbours are told; the peer itself is not (its caller answers it).
   */
  async introduce(peer: PeerRecord, notifyPartners = true): Promise<string[]> {
    const offered = await this.policy.neighboursFor(peer, [], this.opts.targetNeighbours, this.#ctx);
    const fresh: string[] = [];
    for (const n of offered) {
      // A planning policy's parent at its cap lets go of a random link for its new child.
      if (this.policy.wantedLinks && !(await this.#makeRoom(peer.channel, n))) continue;
      await this.store.addLink(peer.id, n);
      fresh.push(n);
      if (notifyPartners) this.notify(n, [peer.id], []);
    }
    return fresh;
  }

  /** Asks the policy for the channel's first tier and tells each peer whose flag changed. */
  async updateFirstTier(channel: string): Promise<void> {
    const peers = await this.store.channelPeers(channel);
    const tier = await this.policy.firstTier(peers, this.#ctx);
    for (const p of peers) {
      const want = tier.has(p.id);
      if (p.firstTier === want) continue;
      p.firstTier = want;
      if (!(await this.store.updatePeer(p))) continue; // left meanwhile
      this.notify(p.id, [], []);
    }
  }

  /**
   * Links `peer` to the peers its policy wants it linked to (a planner's parents). A parent at its cap
   * waits for the next round; at its own cap, the peer lets go of a link neither side wants.
   */
  async #makeWantedLinks(peer: PeerRecord, told: Map<string, string>): Promise<void> {
    const wanted = this.policy.wantedLinks!(peer.channel, peer.id);
    const ranking = wanted.join(',');
    told.set(peer.id, ranking);
    if (this.#parentsTold.get(peer.id) !== ranking) this.notify(peer.id, [], []); // the push carries it
    for (const q of wanted) {
      if (q === peer.id || (await this.store.hasLink(peer.id, q)) || !(await this.store.getPeer(q))) continue;
      if (!(await this.#makeRoom(peer.channel, peer.id)) || !(await this.#makeRoom(peer.channel, q)))
        continue;
      await this.store.addLink(peer.id, q);
      this.notify(peer.id, [q], []);
      this.notify(q, [peer.id], []);
    }
  }

  /**
   * Whether `id` may take one more link: below its cap, or at it and letting go of a link that neither
   * side's policy wants (a random one; a parent or child link stays).
   */
  async #makeRoom(channel: string, id: string): Promise<boolean> {
    const links = await this.store.linksOf(id);
    if (links.length < this.opts.maxNeighbours) return true;
    const wanted = this.policy.wantedLinks?.(channel, id) ?? [];
    const spare = links.find(
      (x) => !wanted.includes(x) && !(this.policy.wantedLinks?.(channel, x) ?? []).includes(id),
    );
    if (spare === undefined) return false;
    await this.store.removeLink(id, spare);
    this.notify(id, [], [spare]);
    this.notify(spare, [], [id]);
    return true;
  }

  /** One round over every channel: first tiers revisited, peers below half their target topped up. */
  async rebalanceAll(): Promise<void> {
    // What each present peer has been told this round (peers gone since are forgotten).
    const told = new Map<string, string>();
    for (const [id] of await this.store.listChannels()) {
      const peers = await this.store.channelPeers(id);
      if (peers.length === 0) continue;
      await this.updateFirstTier(id);
      if (this.policy.wantedLinks) for (const p of peers) await this.#makeWantedLinks(p, told);
      const min = Math.max(1, Math.floor(this.opts.targetNeighbours / 2));
      for (const p of peers) {
        const current = await this.store.linksOf(p.id);
        if (current.length >= min) continue;
        const more = await this.policy.neighboursFor(
          p,
          current,
          this.opts.targetNeighbours - current.length,
          this.#ctx,
        );
        if (more.length === 0) continue;
        for (const n of more) {
          await this.store.addLink(p.id, n);
          this.notify(n, [p.id], []);
        }
        this.notify(p.id, more, []);
      }
    }
    if (this.policy.wantedLinks) this.#parentsTold = told;
  }
}
