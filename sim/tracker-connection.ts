/**
 * A simulated peer's side of the {@link SimTracker}: the engine's `TrackerConnection` seam with the
 * real socket.io client's semantics (acks, fire-and-forget reports, validated pushes, `disconnected`
 * and `reconnected` after the tracker timed the peer out). Requests travel through the tracker's
 * `ask` (latency, processing delay); the tracker delivers pushes through `deliver`.
 */
import {
  TypedEmitter,
  parseAckError,
  parseChannelInfo,
  parseJoinResult,
  parseNeighboursUpdate,
  parsePushedSignal,
  type Ack,
  type Attestation,
  type JoinRequest,
  type JoinResult,
  type PeerComplaintCode,
  type PeerReport,
  type SignalData,
} from '../protocol/index.ts';
import type { TrackerConnection, TrackerConnectionEvents } from '../peer/index.ts';
import { peerRequests } from '../tracker/index.ts';
import type { Payload, PushEvent, SimSocket, SimTracker, Timer } from './tracker.ts';

/** What the connection counts (as `SocketIoTrackerConnection.stats`). */
export interface SimTrackerConnectionStats {
  /** Pushes that failed the client's validation and were dropped, per event. */
  invalidPushes: Record<string, number>;
  lastInvalid: string | null;
  /** Reports not sent (disconnected) or refused by the tracker. */
  reportsDropped: number;
  reportsRefused: number;
  lastReportError: string | null;
  reconnects: number;
}

/**
 * A simulated peer's connection to the {@link SimTracker}: the `TrackerConnection` seam, with the
 * real client's semantics (acks, fire-and-forget reports, validated pushes, `disconnected` and
 * `reconnected` after the tracker timed the peer out).
 */
export class SimTrackerConnection extends TypedEmitter<TrackerConnectionEvents> implements TrackerConnection {
  /** The id of the current session (set by a successful join; cleared by leave and disconnection). */
  peerId: string | undefined;
  readonly #tracker: SimTracker;
  #socket: SimSocket;
  #closed = false;
  #reconnectTimer: Timer | undefined;
  readonly #stats: SimTrackerConnectionStats = {
    invalidPushes: {},
    lastInvalid: null,
    reportsDropped: 0,
    reportsRefused: 0,
    lastReportError: null,
    reconnects: 0,
  };

  /** Use {@link SimTracker.connect}. */
  constructor(
    tracker: SimTracker,
    readonly ip: string,
    readonly latencyMs: number,
  ) {
    super();
    this.#tracker = tracker;
    this.#socket = tracker.open(this);
  }

  get connected(): boolean {
    return !this.#closed && this.#socket.clientConnected;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get stats(): SimTrackerConnectionStats {
    return { ...this.#stats, invalidPushes: { ...this.#stats.invalidPushes } };
  }

  async join(req: JoinRequest): Promise<Ack<JoinResult>> {
    const sock = this.#usable('join');
    const ack = await this.#tracker.ask(sock, 'join', () => this.#tracker.join(sock, req));
    if (!ack.ok) return ack;
    const r = parseJoinResult(ack);
    if (!r.ok) throw new Error(`tracker sent a malformed join answer (${r.message})`);
    if (sock === this.#socket) this.peerId = r.value.peerId;
    return { ...r.value, ok: true };
  }

  report(report: PeerReport): void {
    if (!this.connected) {
      this.#stats.reportsDropped++;
      return;
    }
    const { session } = this.#socket;
    this.#tracker
      .ask(this.#socket, 'report', async () => {
        await peerRequests.report(this.#tracker.sessions, session, report);
        this.#tracker.countRequest('report');
      })
      .then((ack) => {
        if (ack.ok) return;
        this.#stats.reportsRefused++;
        this.#stats.lastReportError = `${ack.error.code}: ${ack.error.message}`;
      })
      .catch(() => {});
  }

  async signal(to: string, data: SignalData): Promise<Ack<object>> {
    const sock = this.#usable('signal');
    const ack = await this.#tracker.ask(sock, 'signal', async () => {
      await peerRequests.signal(this.#tracker.sessions, sock.session, { to, data });
      this.#tracker.countRequest('signal');
    });
    if (ack.ok) return { ok: true };
    const e = parseAckError(ack);
    if (!e.ok) throw new Error(`tracker sent a malformed signal answer (${e.message})`);
    return e.value;
  }

  reportPeer(peer: string, code: PeerComplaintCode): void {
    if (!this.connected) return;
    const { session } = this.#socket;
    this.#tracker
      .ask(this.#socket, 'report-peer', () => {
        this.#tracker.countRequest('report-peer');
        return peerRequests['report-peer'](this.#tracker.sessions, session, { peer, code });
      })
      .catch(() => {});
  }

  /** Leaves the channel (the connection stays open for a later `join`). */
  leave(): void {
    if (!this.connected) return;
    this.peerId = undefined;
    const { session } = this.#socket;
    this.#tracker
      .ask(this.#socket, 'leave', () => peerRequests.leave(this.#tracker.sessions, session))
      .catch(() => {});
  }

  /** Closes the connection for good: the tracker sees a disconnection. Idempotent; no event after it. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#tracker.clock.clearTimeout(this.#reconnectTimer);
    this.peerId = undefined;
    if (this.#socket.clientConnected) this.#tracker.closeFromPeer(this.#socket);
    this.removeAllListeners();
  }

  /**
   * The network drops the connection (`reason` as socket.io gives it): `disconnected` now, the tracker
   * notices after the latency; back after `reconnectAfterMs` when given, else on {@link reconnect}.
   */
  drop(reason = 'transport close', reconnectAfterMs?: number): void {
    if (this.#closed || !this.#socket.clientConnected) return;
    this.#tracker.closeFromPeer(this.#socket);
    this.#lost(reason, reconnectAfterMs);
  }

  /** Connects again after a drop or a kick (a new session: the engine joins again). */
  reconnect(): void {
    if (this.#closed || this.#socket.clientConnected || this.#tracker.destroyed) return;
    this.#tracker.clock.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#socket = this.#tracker.open(this);
    this.#stats.reconnects++;
    this.emit('reconnected');
  }

  /** @internal The tracker pushes an event on `sock`; checked as the real client checks it. */
  deliver<E extends PushEvent>(sock: SimSocket, event: E, payload: Payload<E>): void {
    if (this.#closed || sock !== this.#socket || !sock.clientConnected) return;
    if (event === 'attestation') {
      this.emit('attestation', payload as Attestation);
      return;
    }
    const r =
      event === 'neighbours'
        ? parseNeighboursUpdate(payload)
        : event === 'signal'
          ? parsePushedSignal(payload)
          : parseChannelInfo(payload);
    if (!r.ok) {
      this.#stats.invalidPushes[event] = (this.#stats.invalidPushes[event] ?? 0) + 1;
      this.#stats.lastInvalid = `${event}: ${r.message}`;
      return;
    }
    this.emit(event, ...([r.value] as unknown as Parameters<TrackerConnectionEvents[E]>));
  }

  /** @internal The tracker closed `sock` (it timed the peer out). */
  kicked(sock: SimSocket, reconnectAfterMs: number): void {
    if (this.#closed || sock !== this.#socket || !sock.clientConnected) return;
    this.#lost('io server disconnect', reconnectAfterMs > 0 ? reconnectAfterMs : undefined);
  }

  #lost(reason: string, reconnectAfterMs: number | undefined): void {
    this.#socket.clientConnected = false;
    this.peerId = undefined;
    this.emit('disconnected', reason);
    if (reconnectAfterMs !== undefined && !this.#closed)
      this.#reconnectTimer = this.#tracker.clock.setTimeout(() => this.reconnect(), reconnectAfterMs);
  }

  /** The current socket, or a rejection as the real client gives one. */
  #usable(event: string): SimSocket {
    if (this.#closed) throw new Error('tracker connection is closed');
    if (!this.#socket.clientConnected) throw new Error(`${event} failed: not connected to the tracker`);
    return this.#socket;
  }
}
