/**
 * The engine's session with the tracker: joins (and joins again after each reconnection, with
 * exponential backoff and jitter while the channel is not back), relays the tracker's pushes
 * (neighbours, signaling, attestations, channel info) to the engine, and sends periodic reports.
 */
import {
  TRACKER_PROTOCOL_VERSION,
  type Attestation,
  type ChannelInfo,
  type JoinResult,
  type NatType,
  type PeerKind,
  type PeerMode,
  type PeerReport,
  type SignalData,
  type TrackerErrorCode,
} from '../../protocol/index.ts';
import type { Clock, TimerHandle, TrackerConnection, TrackerConnectionEvents } from './seams.ts';

/** How a join went: joined, or why not (`request-failed`: no answer, or the connection dropped). */
export type JoinOutcome =
  { ok: true; info: ChannelInfo } | { ok: false; code: TrackerErrorCode | 'request-failed'; message: string };

/** Tracker refusals worth trying again after a reconnection (the tracker may still be warming up). */
const TRANSIENT_JOIN_REFUSALS: readonly TrackerErrorCode[] = [
  'unknown-channel',
  'rate-limited',
  'tracker-full',
  'internal',
];

export interface TrackerSessionOptions {
  channel: string;
  kind: PeerKind;
  mode: PeerMode;
  declaredUploadKbps: number;
  joinRetryMs: number;
  joinRetryMaxMs: number;
  joinRetryJitter: number;
}

export interface TrackerSessionDeps {
  clock: Clock;
  tracker: TrackerConnection;
  random: () => number;
  /** The NAT type to join with (declared, or learned since: a rejoin carries it). */
  natType(): NatType;
  /** The rendition to ask for at join (undefined: the tracker assigns the lowest). */
  wantedRendition(): string | undefined;
  /** Joined: the session's id, neighbours and channel info are the engine's now. */
  applyJoin(ack: JoinResult): void;
  joined(peerId: string): void;
  /** The report to send now, or undefined when there is nothing to say (not joined). */
  report(): PeerReport | undefined;
  /** A join refused for good after a reconnection. */
  failed(message: string): void;
  neighbours: TrackerConnectionEvents['neighbours'];
  signal: (from: string, data: SignalData) => void;
  attestation: (att: Attestation) => void;
  channel: (info: ChannelInfo) => void;
}

export class TrackerSession {
  readonly #opts: TrackerSessionOptions;
  readonly #deps: TrackerSessionDeps;
  /** Bumped by every (re)connection and by destroy: a join retry of an older one stops. */
  #joinEpoch = 0;
  #joinRetryTimer: TimerHandle | undefined;
  #reportTimer: TimerHandle | undefined;
  #reportIntervalMs = 5000;
  #destroyed = false;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(opts: TrackerSessionOptions, deps: TrackerSessionDeps) {
    this.#opts = opts;
    this.#deps = deps;
  }

  /** Listens to the tracker's pushes (once, before the first join). */
  wire(): void {
    const { tracker, clock } = this.#deps;
    const handlers: Partial<TrackerConnectionEvents> = {
      neighbours: (u) => this.#deps.neighbours(u),
      signal: ({ from, data }) => this.#deps.signal(from, data),
      attestation: (att) => this.#deps.attestation(att),
      channel: (info) => this.#deps.channel(info),
      // A new session: new id and neighbours; existing P2P links stay until they close.
      reconnected: () => this.#rejoin(),
      disconnected: () => {
        // A retry of the old session stops; the next reconnection starts over.
        this.#joinEpoch++;
        clock.clearTimeout(this.#joinRetryTimer);
      },
    };
    for (const [event, fn] of Object.entries(handlers) as [keyof TrackerConnectionEvents, never][]) {
      tracker.on(event, fn);
      this.#unsubscribe.push(() => tracker.off(event, fn));
    }
  }

  /** The first join; returns the epoch to pass to `retryInBackground` if it failed. */
  firstJoin(): { epoch: number; outcome: Promise<JoinOutcome> } {
    return { epoch: this.#joinEpoch, outcome: this.#join() };
  }

  /** A failed join worth another try (`request-failed` or a transient refusal). */
  transient(code: TrackerErrorCode | 'request-failed'): boolean {
    return code === 'request-failed' || TRANSIENT_JOIN_REFUSALS.includes(code);
  }

  /** Keeps trying to join in the background (unless a newer (re)connection started meanwhile). */
  retryInBackground(epoch: number): void {
    if (epoch === this.#joinEpoch) this.#retryJoin(epoch, 0);
  }

  /** One join attempt. Never throws: a refusal or a failed request is an outcome. */
  async #join(): Promise<JoinOutcome> {
    const wanted = this.#deps.wantedRendition();
    let ack;
    try {
      ack = await this.#deps.tracker.join({
        protocolVersion: TRACKER_PROTOCOL_VERSION,
        channel: this.#opts.channel,
        kind: this.#opts.kind,
        mode: this.#opts.mode,
        // 'auto' before the ladder is known: the tracker assigns the lowest rendition.
        ...(wanted && { rendition: wanted }),
        uploadKbps: this.#opts.declaredUploadKbps,
        natType: this.#deps.natType(),
      });
    } catch (err) {
      return { ok: false, code: 'request-failed', message: (err as Error).message };
    }
    if (this.#destroyed) return { ok: false, code: 'request-failed', message: 'engine destroyed' };
    if (!ack.ok) return { ok: false, code: ack.error.code, message: ack.error.message };
    this.#deps.applyJoin(ack);
    this.#reportIntervalMs = ack.reportIntervalMs;
    this.#scheduleReport();
    this.#deps.joined(ack.peerId);
    return { ok: true, info: ack.channel };
  }

  /**
   * Joins again after a reconnection (a new session): a refusal as `unknown-channel` (the tracker
   * restarted and the source has not registered again yet) or a failed request is retried with
   * exponential backoff and jitter, until joined, a newer (re)connection, or destroy.
   */
  #rejoin(): void {
    const epoch = ++this.#joinEpoch;
    this.#deps.clock.clearTimeout(this.#joinRetryTimer);
    void this.#join().then((r) => this.#afterJoin(epoch, 0, r));
  }

  #afterJoin(epoch: number, attempt: number, r: JoinOutcome): void {
    if (r.ok || this.#destroyed || epoch !== this.#joinEpoch) return;
    // Another attempt of this session got in first.
    if (r.code === 'already-joined') return;
    if (!this.transient(r.code)) {
      this.#deps.failed(`${r.code}: ${r.message}`);
      return;
    }
    this.#retryJoin(epoch, attempt);
  }

  #retryJoin(epoch: number, attempt: number): void {
    const { joinRetryMs, joinRetryMaxMs, joinRetryJitter } = this.#opts;
    const { clock } = this.#deps;
    const base = Math.min(joinRetryMaxMs, joinRetryMs * 2 ** attempt);
    const delayMs = base * (1 + joinRetryJitter * (2 * this.#deps.random() - 1));
    clock.clearTimeout(this.#joinRetryTimer);
    this.#joinRetryTimer = clock.setTimeout(() => {
      this.#joinRetryTimer = undefined;
      if (this.#destroyed || epoch !== this.#joinEpoch) return;
      void this.#join().then((r) => this.#afterJoin(epoch, attempt + 1, r));
    }, delayMs);
  }

  #scheduleReport(): void {
    const { clock } = this.#deps;
    clock.clearTimeout(this.#reportTimer);
    this.#reportTimer = clock.setTimeout(() => {
      this.sendReport();
      this.#scheduleReport();
    }, this.#reportIntervalMs);
  }

  /** Sends a report now (also done periodically once joined). */
  sendReport(): void {
    if (this.#destroyed) return;
    const report = this.#deps.report();
    if (report) this.#deps.tracker.report(report);
  }

  /** Stops retries and reports, stops listening and leaves the tracker. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#joinEpoch++;
    this.#deps.clock.clearTimeout(this.#joinRetryTimer);
    this.#deps.clock.clearTimeout(this.#reportTimer);
    this.#deps.tracker.leave();
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe.length = 0;
  }
}
