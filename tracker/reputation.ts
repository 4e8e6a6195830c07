/**
 * What peers say about each other. A peer that several of its own neighbours (peers the tracker
 * introduced to it) complained about is quarantined: the overlay introduces it to no one in the
 * channel. Its address is penalized for a while: new identities from it may join only slowly, so a
 * fresh tracker session does not buy a fresh try. One complaint is never enough, and only a peer's
 * neighbours may complain, so an attacker cannot get an honest peer quarantined on its own word.
 */
import type { PeerComplaintCode } from '../protocol/index.ts';

export interface ReputationOptions {
  /** Distinct neighbours that must complain before a peer is quarantined. */
  quarantineAfterReporters: number;
  /** How long an address stays penalized after one of its peers was quarantined. */
  penaltyMs: number;
  /** A penalized address may start a new session at most this often. */
  penalizedJoinIntervalMs: number;
  /** Penalized addresses remembered at most (the oldest are forgotten first). */
  maxPenalizedAddresses: number;
}

export const DEFAULT_REPUTATION: ReputationOptions = {
  quarantineAfterReporters: 2,
  penaltyMs: 10 * 60_000,
  penalizedJoinIntervalMs: 60_000,
  maxPenalizedAddresses: 10_000,
};

export class Reputation {
  readonly opts: ReputationOptions;
  /** accused peer id → reporter id → code. Bounded: only neighbours may complain. */
  readonly #complaints = new Map<string, Map<string, PeerComplaintCode>>();
  /** address → when its penalty ends and when it last started a session (insertion order = age). */
  readonly #penalized = new Map<string, { untilMs: number; lastJoinMs: number }>();

  constructor(
    opts: Partial<ReputationOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.opts = { ...DEFAULT_REPUTATION, ...opts };
    if (!Number.isInteger(this.opts.quarantineAfterReporters) || this.opts.quarantineAfterReporters < 1)
      throw new RangeError('quarantineAfterReporters must be a positive integer');
  }

  /**
   * Records that `reporter` (a neighbour of `accused`) complained. True when this complaint is the one
   * that makes the accused quarantined.
   */
  complain(accused: string, reporter: string, code: PeerComplaintCode): boolean {
    let by = this.#complaints.get(accused);
    if (!by) this.#complaints.set(accused, (by = new Map()));
    const before = by.size;
    by.set(reporter, code);
    return before < this.opts.quarantineAfterReporters && by.size >= this.opts.quarantineAfterReporters;
  }

  /** Complaints about a peer, by reporter (a copy). */
  complaintsAbout(peer: string): Map<string, PeerComplaintCode> {
    return new Map(this.#complaints.get(peer));
  }

  /** A peer left: its record goes (its address keeps any penalty). */
  forget(peer: string): void {
    this.#complaints.delete(peer);
  }

  /** The address of a quarantined peer: new sessions from it are rate-limited for a while. */
  penalize(ip: string): void {
    const now = this.now();
    this.#penalized.delete(ip); // re-inserted as the newest
    this.#penalized.set(ip, { untilMs: now + this.opts.penaltyMs, lastJoinMs: now });
    while (this.#penalized.size > this.opts.maxPenalizedAddresses) {
      const oldest = this.#penalized.keys().next().value;
      if (oldest === undefined) break;
      this.#penalized.delete(oldest);
    }
  }

  isPenalized(ip: string): boolean {
    const p = this.#penalized.get(ip);
    return p !== undefined && p.untilMs > this.now();
  }

  /** May `ip` start a new session now? Always, unless it is penalized and started one recently. */
  mayJoin(ip: string): boolean {
    const p = this.#penalized.get(ip);
    const now = this.now();
    if (!p || p.untilMs <= now) return true;
    if (now - p.lastJoinMs < this.opts.penalizedJoinIntervalMs) return false;
    p.lastJoinMs = now;
    return true;
  }

  /** Forgets penalties that ended. */
  sweep(): void {
    const now = this.now();
    for (const [ip, p] of this.#penalized) if (p.untilMs <= now) this.#penalized.delete(ip);
  }
}
