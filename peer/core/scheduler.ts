/**
 * The scheduler: one pure decision step. Given the demands, what is in flight, a read-only view of
 * the neighbours, estimates and now, it says what to do (request a segment from a neighbour, fetch
 * it over HTTP, switch a stalled or too slow P2P transfer to HTTP, pull fresh segments as first tier)
 * and does none of it: the engine performs the actions. Deadline-aware: P2P when a neighbour holds
 * the segment and can deliver it in time with a safety margin, HTTP from the origin when time gets
 * short, so that a viewer never stalls because of P2P.
 *
 * Chandelier changes supplier choice through these inputs (which neighbours, how they rank), nothing
 * else; the function can be unit-tested and swapped without links or timers.
 */

export interface SchedulerOptions {
  /** False: never use P2P (the HTTP-only baseline). */
  p2p: boolean;
  /** A P2P transfer must be expected to finish this long before its deadline. */
  safetyMarginMs: number;
  /** A P2P transfer without progress for this long is switched to HTTP. */
  p2pStallMs: number;
  /**
   * A demand waits this long after it appeared for a ranked supplier (the tracker's parents) that does
   * not hold the segment yet, rather than take it from another holder, while the deadline leaves room
   * for that holder and the origin after the wait.
   */
  parentWaitMs: number;
  schedulerTickMs: number;
  /** First-tier pulls wait until the player has set the rendition. */
  followPlayerRendition: boolean;
}

/** What the scheduler may know of a neighbour (read only). */
export interface NeighbourView {
  readonly id: string;
  readonly open: boolean;
  readonly demoted: boolean;
  /** Until then it said it is busy: not to be asked. */
  readonly busyUntil: number;
  /** Transfers from it in flight. */
  readonly inFlight: number;
  readonly firstByteMs: number;
  readonly throughputBps: number;
  /** Bytes received from it so far (spreads requests over holders). */
  readonly receivedBytes: number;
  /** Its place among the tracker's ranked suppliers (0: the primary parent); Infinity: not one. */
  readonly supplierRank: number;
  holdsSegment(rendition: string, mediaSequence: number): boolean;
  /** It is receiving the segment and would relay it as its bytes arrive (not when we feed it). */
  receivingSegment(rendition: string, mediaSequence: number): boolean;
}

/** Progress of a P2P transfer (read only). */
export interface DownloadView {
  readonly startedAt: number;
  readonly lastProgressAt: number;
  readonly firstByteAt: number | undefined;
  readonly received: number;
  readonly totalBytes: number | undefined;
  /** From a neighbour still receiving the segment (its slowness may be its own supplier's). */
  readonly relayed: boolean;
}

export type TransferView =
  | { via: 'http' }
  | {
      via: 'p2p';
      neighbourId: string;
      neighbourThroughputBps: number;
      /** Still among the neighbour's transfers in flight (not yet delivered or aborted). */
      inFlight: boolean;
      download: DownloadView;
    };

export interface DemandView {
  readonly rendition: string;
  readonly mediaSequence: number;
  readonly deadlineAt: number;
  readonly createdAt: number;
}

export interface SchedulerEstimates {
  /** Expected byte length of a segment (its attestation's, or guessed from the bitrate). */
  expectedBytes(rendition: string, mediaSequence: number): number;
  /** Time to fetch that many bytes over HTTP (first byte and throughput). */
  httpEstimateMs(bytes: number): number;
  topBitrateBps: number;
}

export interface SchedulerInput {
  now: number;
  opts: SchedulerOptions;
  demands: Iterable<DemandView>;
  /** Neighbours in the order they were linked (all of them, open or not). */
  neighbours: readonly NeighbourView[];
  estimates: SchedulerEstimates;
  /** What is being fetched for a segment. */
  transfer(rendition: string, mediaSequence: number): TransferView | undefined;
  /** Bytes are here, waiting for their attestation. */
  unverified(rendition: string, mediaSequence: number): boolean;
  /** A verified copy is stored. */
  held(rendition: string, mediaSequence: number): boolean;
  firstTier: {
    active: boolean;
    rendition: string;
    newestPublished: number;
    /** The player said which rendition it plays. */
    renditionSet: boolean;
    /** A playlist gap (never published): not pulled. */
    isGap(mediaSequence: number): boolean;
  };
}

export type SchedulerAction =
  /** First tier: fetch a freshly published segment from the origin. */
  | { type: 'pull'; rendition: string; mediaSequence: number }
  /** Fetch a demanded segment over HTTP; `waitedForP2p` (when set) is recorded on the demand. */
  | { type: 'http'; rendition: string; mediaSequence: number; waitedForP2p?: boolean }
  | { type: 'p2p'; rendition: string; mediaSequence: number; neighbourId: string; deadlineAt: number }
  /**
   * Cancel the P2P transfer and fetch over HTTP; `blame`: the neighbour is held responsible (it
   * stalled, or did not even keep up with the stream).
   */
  | {
      type: 'switch';
      rendition: string;
      mediaSequence: number;
      neighbourId: string;
      why: 'stalled' | 'too slow';
      blame: boolean;
      /** The neighbour was relaying the segment. */
      relayed: boolean;
    };

/** At most this many transfers in flight from one neighbour. */
const MAX_IN_FLIGHT_PER_NEIGHBOUR = 2;

/** What a round's own actions changed so far, for its later decisions. */
interface RoundEffects {
  /** Transfers started (+) or switched away (−) per neighbour id. */
  readonly inFlightDelta: Map<string, number>;
  /** Neighbours held responsible for a switch: demoted for the rest of the round. */
  readonly blamed: Set<string>;
}

/**
 * A neighbour as a round's later decisions see it: its view plus the round's effects, read live when
 * asked (nothing changes while one decision reads it), so that a round copies no neighbour's state.
 */
class RoundView implements NeighbourView {
  constructor(
    private readonly n: NeighbourView,
    private readonly round: RoundEffects,
  ) {}
  get id(): string {
    return this.n.id;
  }
  get open(): boolean {
    return this.n.open;
  }
  get demoted(): boolean {
    return this.n.demoted || this.round.blamed.has(this.n.id);
  }
  get busyUntil(): number {
    return this.n.busyUntil;
  }
  get inFlight(): number {
    return this.n.inFlight + (this.round.inFlightDelta.get(this.n.id) ?? 0);
  }
  get firstByteMs(): number {
    return this.n.firstByteMs;
  }
  get throughputBps(): number {
    return this.n.throughputBps;
  }
  get receivedBytes(): number {
    return this.n.receivedBytes;
  }
  get supplierRank(): number {
    return this.n.supplierRank;
  }
  holdsSegment(rendition: string, mediaSequence: number): boolean {
    return this.n.holdsSegment(rendition, mediaSequence);
  }
  receivingSegment(rendition: string, mediaSequence: number): boolean {
    return this.n.receivingSegment(rendition, mediaSequence);
  }
}

/** One scheduling round: the actions to perform, in order. */
export function schedule(input: SchedulerInput): SchedulerAction[] {
  const { now, opts, estimates } = input;
  const actions: SchedulerAction[] = [];
  // Effects of this round's own actions on what later decisions see.
  const pulled = new Set<number>();
  const round: RoundEffects = { inFlightDelta: new Map(), blamed: new Set() };
  const { inFlightDelta, blamed } = round;
  // Made once per round, when a first demand looks for a holder.
  let views: RoundView[] | undefined;

  // First tier: pull fresh segments of our rendition from the origin as soon as they exist.
  const ft = input.firstTier;
  if (ft.active && ft.newestPublished >= 0 && (ft.renditionSet || !opts.followPlayerRendition)) {
    for (let seq = Math.max(0, ft.newestPublished - 1); seq <= ft.newestPublished; seq++) {
      if (ft.isGap(seq)) continue;
      if (
        !input.held(ft.rendition, seq) &&
        !input.transfer(ft.rendition, seq) &&
        !input.unverified(ft.rendition, seq)
      ) {
        actions.push({ type: 'pull', rendition: ft.rendition, mediaSequence: seq });
        pulled.add(seq);
      }
    }
  }

  // The ranked suppliers (parents) that could still be asked this round: found once per round, on the
  // first demand that has to decide (none under a policy that ranks no one).
  let parents: RoundView[] | undefined;
  // Whether a demand should wait for a parent that does not hold the segment yet: the demand is younger
  // than parentWaitMs, and after the rest of that wait there is still time for another holder (etaMs)
  // or, failing that, the origin.
  const waitsForParent = (demand: DemandView, size: number, etaMs: number): boolean => {
    parents ??= views!.filter(
      (n) => n.supplierRank !== Infinity && n.open && !n.demoted && n.busyUntil <= now,
    );
    if (parents.length === 0) return false;
    const waited = now - demand.createdAt;
    if (waited >= opts.parentWaitMs) return false;
    const slack = demand.deadlineAt - now - (opts.parentWaitMs - waited);
    if (slack < etaMs + estimates.httpEstimateMs(size) + 2 * opts.safetyMarginMs) return false;
    return parents.some((n) => !n.holdsSegment(demand.rendition, demand.mediaSequence));
  };

  for (const demand of input.demands) {
    const { rendition, mediaSequence: seq, deadlineAt } = demand;
    const transfer =
      rendition === ft.rendition && pulled.has(seq)
        ? { via: 'http' as const }
        : input.transfer(rendition, seq);
    const timeLeft = deadlineAt - now;
    const size = estimates.expectedBytes(rendition, seq);
    // Its bytes are here, waiting for their attestation: fetching them again would not help.
    if (transfer?.via === 'http' || input.unverified(rendition, seq)) continue;
    if (transfer?.via === 'p2p') {
      const d = transfer.download;
      // A relay waits for its own supplier before its first byte: only the deadline says it is too late.
      const stalled = now - d.lastProgressAt > opts.p2pStallMs && !(d.relayed && d.firstByteAt === undefined);
      const rate =
        d.firstByteAt !== undefined && now > d.firstByteAt
          ? (d.received * 1000) / (now - d.firstByteAt)
          : transfer.neighbourThroughputBps;
      const remaining = (d.totalBytes ?? size) - d.received;
      const late = now + (remaining / Math.max(1, rate)) * 1000 > deadlineAt - opts.safetyMarginMs / 2;
      const httpNeedsMs = estimates.httpEstimateMs(size) + opts.safetyMarginMs;
      if (stalled || (late && timeLeft < httpNeedsMs * 2)) {
        // Too slow for this deadline is held against the neighbour only if it did not even keep up
        // with the stream (dripping); our own link may be the limit otherwise.
        const achievedBps = (d.received * 1000) / Math.max(1, now - d.startedAt);
        // A relay is only as fast as its own supplier: not held against it (it is left alone a while).
        const blame = !d.relayed && (stalled || achievedBps < estimates.topBitrateBps / 8);
        const id = transfer.neighbourId;
        actions.push({
          type: 'switch',
          rendition,
          mediaSequence: seq,
          neighbourId: id,
          why: stalled ? 'stalled' : 'too slow',
          blame,
          relayed: d.relayed,
        });
        if (transfer.inFlight) inFlightDelta.set(id, (inFlightDelta.get(id) ?? 0) - 1);
        if (blame) blamed.add(id);
      }
      continue;
    }
    // Not in flight: P2P if a neighbour holds it and can deliver in time, else HTTP when time is short.
    const best = opts.p2p
      ? bestHolder(
          (views ??= input.neighbours.map((n) => new RoundView(n, round))),
          rendition,
          seq,
          size,
          deadlineAt,
          now,
          opts.safetyMarginMs,
        )
      : undefined;
    if (best && now + best.etaMs + opts.safetyMarginMs < deadlineAt) {
      if (best.neighbour.supplierRank === Infinity && waitsForParent(demand, size, best.etaMs)) continue;
      actions.push({
        type: 'p2p',
        rendition,
        mediaSequence: seq,
        neighbourId: best.neighbour.id,
        deadlineAt,
      });
      inFlightDelta.set(best.neighbour.id, (inFlightDelta.get(best.neighbour.id) ?? 0) + 1);
      continue;
    }
    const httpNeedsMs = estimates.httpEstimateMs(size) + opts.safetyMarginMs;
    // Waiting is worth it only while someone may still get it to us in time.
    const mayArrive = opts.p2p && input.neighbours.length > 0 && !ft.active;
    if (!mayArrive || timeLeft <= httpNeedsMs + opts.safetyMarginMs) {
      actions.push({
        type: 'http',
        rendition,
        mediaSequence: seq,
        ...(now - demand.createdAt > opts.schedulerTickMs && { waitedForP2p: mayArrive }),
      });
    }
  }
  return actions;
}

/**
 * The neighbour to ask for a segment: of those that hold it and can deliver it before `deadlineAt`
 * with the safety margin, the best-ranked of the tracker's suppliers (parents), else the one we have
 * taken least from (fewest transfers in flight, then fewest bytes so far), so that requests spread
 * over every holder rather than all going to the fastest one (the first tier would upload for
 * everyone). None can make it: the fastest, for the caller to judge.
 */
export function bestHolder(
  neighbours: Iterable<NeighbourView>,
  rendition: string,
  seq: number,
  size: number,
  deadlineAt: number,
  now: number,
  safetyMarginMs: number,
): { neighbour: NeighbourView; etaMs: number } | undefined {
  let fastest: { neighbour: NeighbourView; etaMs: number } | undefined;
  let spread:
    { neighbour: NeighbourView; etaMs: number; load: number; rank: number; relay: boolean } | undefined;
  for (const n of neighbours) {
    if (!n.open || n.inFlight >= MAX_IN_FLIGHT_PER_NEIGHBOUR || n.busyUntil > now || n.demoted) continue;
    // A neighbour still receiving the segment relays it as it arrives.
    const relay = !n.holdsSegment(rendition, seq);
    if (relay && !n.receivingSegment(rendition, seq)) continue;
    const etaMs = n.firstByteMs + (size / Math.max(1, n.throughputBps)) * 1000 * (1 + n.inFlight);
    if (!fastest || etaMs < fastest.etaMs) fastest = { neighbour: n, etaMs };
    if (now + etaMs + safetyMarginMs >= deadlineAt) continue;
    // The tracker's ranked suppliers first (a parent in time beats any other holder), then those that
    // hold it over relays, then the least taken from.
    const rank = n.supplierRank;
    const load = n.inFlight * 1e12 + n.receivedBytes;
    if (
      !spread ||
      rank < spread.rank ||
      (rank === spread.rank &&
        (Number(relay) < Number(spread.relay) ||
          (relay === spread.relay && (load < spread.load || (load === spread.load && etaMs < spread.etaMs)))))
    )
      spread = { neighbour: n, etaMs, load, rank, relay };
  }
  return spread ?? fastest;
}
