/**
 * Chandelier's optimizer: who feeds whom in one rendition's swarm, from measured upload capacity and
 * NAT type. Pure and synchronous (the policy, chandelier-policy.ts, feeds it from the store and
 * applies its plan); O(n log n) per rendition plus the NAT scans below.
 *
 * The plan is a tree of supply slots hung from the origin. A peer's slots are the streams its upload
 * carries: ⌊capacity × utilisation ÷ bitrate⌋, capped at `maxChildren` (a peer whose capacity is not
 * known yet gets `unknownSlots`). Peers are ranked by slots (older peers first among equals: the
 * stable ones), and laid out level by level: the first tier (level 0, fed by the origin), then as
 * many peers on the next level as the level above has slots, and so on. High-capacity peers hang near
 * the source and low-capacity ones at the tips, so the depth (the latency budget: every level adds a
 * segment's transfer) stays within `maxDepth` with the fewest origin copies: the first tier is the
 * smallest that fits everyone within `maxDepth` levels below it, never fewer than `minFirstTier`.
 *
 * Then each peer below the first tier gets ranked parents: its primary, from the level right above
 * (or any level above with a free slot), NAT-compatible (protocol/nat.ts; never an incompatible pair
 * directly), its previous primary when that one is still valid (stability: a working parent stays),
 * otherwise the next parent with a free slot in turn (load spread evenly); then `parentsPerPeer − 1`
 * backups from the levels above, which take no slot (its previous backups while still valid: every
 * parent changed is a link to make, so a stable plan is one that does not rewire the mesh each round). A peer no compatible parent can take joins the
 * first tier: the origin feeds it rather than nobody.
 */
import { connectsDirectly, type NatType } from '../protocol/index.ts';

export interface ChandelierPeer {
  readonly id: string;
  readonly natType: NatType;
  /** Upload capacity (kbit/s): measured, else declared; 0 or not finite: not known yet. */
  readonly uploadKbps: number;
  /** When it joined (ms): older first among peers of equal slots. */
  readonly joinedAt: number;
  /** Its primary parent after the previous round, if any (kept while valid). */
  readonly parent?: string | undefined;
  /** Its backups after the previous round (kept while valid, before new ones are drawn). */
  readonly backups?: readonly string[] | undefined;
}

export interface ChandelierOptions {
  /** Share of a peer's capacity the plan may fill (the rest absorbs bursts and retransmissions). */
  utilisation: number;
  /** Children per peer at most (its links are bounded). */
  maxChildren: number;
  /** Slots of a peer whose capacity is not known yet. */
  unknownSlots: number;
  /** Levels below the first tier at most. */
  maxDepth: number;
  /** First-tier peers per rendition at least (redundancy against a first-tier peer's departure). */
  minFirstTier: number;
  /** Ranked parents per peer below the first tier: a primary and backups. */
  parentsPerPeer: number;
}

export const DEFAULT_CHANDELIER: ChandelierOptions = {
  utilisation: 0.8,
  maxChildren: 8,
  unknownSlots: 2,
  // 3, not 4: with home uplinks (npm run sim -- --upload-dist home), 1 000 peers, offload 38 → 44 %,
  // unchanged in steady, flash crowd and heterogeneous (README "Chandelier's status").
  maxDepth: 3,
  minFirstTier: 2,
  parentsPerPeer: 3,
};

export interface ChandelierPlan {
  /** Peers fed by the origin. */
  readonly firstTier: ReadonlySet<string>;
  /** Level of each peer: 0 for the first tier. */
  readonly level: ReadonlyMap<string, number>;
  /** Ranked parents of each peer below the first tier (primary first). */
  readonly parents: ReadonlyMap<string, readonly string[]>;
  /** Slots of each peer, and how many children it was given. */
  readonly slots: ReadonlyMap<string, number>;
  readonly children: ReadonlyMap<string, number>;
  /** Deepest level used. */
  readonly depth: number;
  /** Peers kept on the parent they had. */
  readonly kept: number;
}

/** Supply slots of a peer for a stream of `bitrateKbps`. */
export function slotsOf(peer: ChandelierPeer, bitrateKbps: number, o: ChandelierOptions): number {
  if (!(peer.uploadKbps > 0) || !Number.isFinite(peer.uploadKbps)) return o.unknownSlots;
  return Math.min(o.maxChildren, Math.floor((peer.uploadKbps * o.utilisation) / bitrateKbps));
}

/** Sizes of the levels when the ranked peers are laid out from a first tier of `f`. */
function levelSizes(slots: readonly number[], f: number): number[] {
  const sizes = [f];
  let placed = f;
  let from = 0;
  while (placed < slots.length) {
    let supply = 0;
    for (let i = from; i < placed; i++) supply += slots[i]!;
    if (supply === 0) return [...sizes, Infinity]; // nobody above can feed the rest
    const next = Math.min(supply, slots.length - placed);
    from = placed;
    placed += next;
    sizes.push(next);
  }
  return sizes;
}

/** Plans one rendition's swarm (the peers' order does not matter; the result is deterministic). */
export function planRendition(
  peers: readonly ChandelierPeer[],
  bitrateKbps: number,
  opts: Partial<ChandelierOptions> = {},
): ChandelierPlan {
  const o = { ...DEFAULT_CHANDELIER, ...opts };
  if (!(bitrateKbps > 0)) throw new RangeError('bitrateKbps must be > 0');
  const slotOf = new Map<string, number>();
  for (const p of peers) slotOf.set(p.id, slotsOf(p, bitrateKbps, o));
  const ranked = [...peers].sort(
    (a, b) =>
      slotOf.get(b.id)! - slotOf.get(a.id)! ||
      a.joinedAt - b.joinedAt ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  const slots = ranked.map((p) => slotOf.get(p.id)!);
  const n = ranked.length;
  // The smallest first tier that fits everyone within maxDepth levels below it (more first-tier peers
  // never make the tree deeper, so a binary search finds it).
  const fits = (f: number) => levelSizes(slots, f).length - 1 <= o.maxDepth;
  let lo = Math.min(n, Math.max(1, o.minFirstTier));
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) hi = mid;
    else lo = mid + 1;
  }
  const sizes = n === 0 ? [] : levelSizes(slots, lo);

  const level = new Map<string, number>();
  const byLevel: ChandelierPeer[][] = [];
  let at = 0;
  for (let l = 0; l < sizes.length; l++) {
    byLevel.push(ranked.slice(at, at + sizes[l]!));
    for (const p of byLevel[l]!) level.set(p.id, l);
    at += sizes[l]!;
  }

  const free = new Map(slotOf);
  const children = new Map<string, number>();
  const parents = new Map<string, string[]>();
  const firstTier = new Set(byLevel[0]?.map((p) => p.id) ?? []);
  const byId = new Map(peers.map((p) => [p.id, p]));
  let kept = 0;
  let depth = 0;
  // Suppliers with a free slot so far (every level above the one being placed), in rank order, and a
  // cursor that goes round them so that children spread evenly.
  const suppliers: ChandelierPeer[] = [...(byLevel[0] ?? [])];
  let cursor = 0;
  const validParent = (child: ChandelierPeer, parent: ChandelierPeer | undefined, childLevel: number) =>
    parent !== undefined &&
    parent.id !== child.id &&
    (level.get(parent.id) ?? Infinity) < childLevel &&
    free.get(parent.id)! > 0 &&
    connectsDirectly(child.natType, parent.natType);
  const give = (parent: ChandelierPeer) => {
    free.set(parent.id, free.get(parent.id)! - 1);
    children.set(parent.id, (children.get(parent.id) ?? 0) + 1);
  };

  for (let l = 1; l < byLevel.length; l++) {
    // Nearest level first: start the round at the level right above.
    const levelStart = suppliers.length - byLevel[l - 1]!.length;
    cursor = Math.max(cursor, levelStart);
    // Stability first: the level's peers keep their previous primary while valid, before any of them
    // draws a new one (so a newcomer never takes the slot a working child holds).
    const keptParent = new Map<string, ChandelierPeer>();
    for (const child of byLevel[l]!) {
      const previous = child.parent !== undefined ? byId.get(child.parent) : undefined;
      if (!validParent(child, previous, l)) continue;
      keptParent.set(child.id, previous!);
      give(previous!);
      kept++;
    }
    for (const child of byLevel[l]!) {
      let parent = keptParent.get(child.id);
      // Round the level right above from the cursor, once; then any level above, in rank order.
      const width = suppliers.length - levelStart;
      for (let k = 0; k < width && !parent; k++) {
        const i = levelStart + ((cursor - levelStart + k) % width);
        const candidate = suppliers[i]!;
        if (validParent(child, candidate, l)) {
          parent = candidate;
          cursor = i + 1 >= suppliers.length ? levelStart : i + 1;
        }
      }
      for (let i = 0; i < levelStart && !parent; i++)
        if (validParent(child, suppliers[i], l)) parent = suppliers[i];
      if (!parent) {
        // No compatible parent with room: the origin feeds it.
        firstTier.add(child.id);
        level.set(child.id, 0);
        continue;
      }
      if (!keptParent.has(child.id)) give(parent);
      parents.set(child.id, [parent.id]);
      depth = Math.max(depth, l);
    }
    // Peers the origin had to take are at level 0 now: valid parents for every level below.
    suppliers.push(...byLevel[l]!);
  }

  // Backups: compatible peers of lower levels than the child, different from its parents, spread by a
  // cursor over every peer placed (they take no slot: they stand in while the primary falters).
  if (o.parentsPerPeer > 1) {
    const placed = ranked.filter((p) => slotOf.get(p.id)! > 0);
    let b = 0;
    for (const [childId, list] of parents) {
      const child = byId.get(childId)!;
      const childLevel = level.get(childId)!;
      const validBackup = (candidate: ChandelierPeer | undefined): candidate is ChandelierPeer =>
        candidate !== undefined &&
        slotOf.get(candidate.id)! > 0 &&
        (level.get(candidate.id) ?? Infinity) < childLevel &&
        !list.includes(candidate.id) &&
        connectsDirectly(child.natType, candidate.natType);
      for (const id of child.backups ?? []) {
        const candidate = byId.get(id);
        if (list.length < o.parentsPerPeer && validBackup(candidate)) list.push(id);
      }
      for (let k = 0; k < placed.length && list.length < o.parentsPerPeer; k++) {
        const candidate = placed[(b + k) % placed.length]!;
        if (validBackup(candidate)) {
          list.push(candidate.id);
          b = (b + k + 1) % placed.length;
        }
      }
    }
  }
  return { firstTier, level, parents, slots: slotOf, children, depth, kept };
}
