/**
 * {@link TrackerConnection} over socket.io-client (browsers and Node). socket.io reconnects by itself
 * after network trouble; this class reports it (`disconnected`, `reconnected`: the engine joins again).
 * Everything the tracker pushes is validated before it is emitted; invalid pushes are dropped and
 * counted, never thrown.
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import {
  TypedEmitter,
  parseAckError,
  parseAttestation,
  parseChannelInfo,
  parseJoinResult,
  parseNeighboursUpdate,
  parsePushedSignal,
  type Ack,
  type ClientToServerEvents,
  type JoinRequest,
  type JoinResult,
  type PeerComplaintCode,
  type PeerReport,
  type ServerToClientEvents,
  type SignalData,
  type Validated,
} from '../../protocol/index.ts';
import type { TrackerConnection, TrackerConnectionEvents } from '../core/seams.ts';

export interface SocketIoTrackerConnectionOptions {
  /** The tracker's URL, e.g. `http://127.0.0.1:8000`. */
  url: string;
  /**
   * Passed to `io()` over the defaults (`transports: ['websocket']`, `forceNew: true`, and
   * {@link RECONNECTION_DEFAULTS}).
   */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /** How long `join` waits for the tracker's answer (default 10 s). */
  joinTimeoutMs?: number;
  /** How long `signal` waits for the tracker's answer (default 10 s). */
  ackTimeoutMs?: number;
  /**
   * When the tracker itself closes the session (it timed the peer out) or refuses the connection
   * (rate limits), socket.io does not try again; this connection does after this delay (default 5 s;
   * 0: never).
   */
  reconnectAfterKickMs?: number;
}

export interface TrackerConnectionStats {
  /** Pushes from the tracker that failed validation and were dropped, per event. */
  invalidPushes: Record<string, number>;
  /** The last invalid push's event and reason. */
  lastInvalid: string | null;
  /** Reports not sent (disconnected) or refused by the tracker. */
  reportsDropped: number;
  reportsRefused: number;
  /** Last refusal of a report (code: message). */
  lastReportError: string | null;
  connectErrors: number;
  reconnects: number;
}

type IoSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * Reconnection delays after the tracker went away (restart, network): 0.5 s doubling to 2 s, each ±50 %
 * at random (socket.io's defaults are 1 s to 5 s), so a restarted tracker sees its peers again within a
 * few seconds, and not all in the same instant.
 */
export const RECONNECTION_DEFAULTS = {
  reconnectionDelay: 500,
  reconnectionDelayMax: 2000,
  randomizationFactor: 0.5,
} as const satisfies Partial<ManagerOptions>;

export class SocketIoTrackerConnection
  extends TypedEmitter<TrackerConnectionEvents>
  implements TrackerConnection
{
  readonly #socket: IoSocket;
  readonly #joinTimeoutMs: number;
  readonly #ackTimeoutMs: number;
  readonly #kickDelayMs: number;
  #everConnected = false;
  #closed = false;
  #kickTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #stats: TrackerConnectionStats = {
    invalidPushes: {},
    lastInvalid: null,
    reportsDropped: 0,
    reportsRefused: 0,
    lastReportError: null,
    connectErrors: 0,
    reconnects: 0,
  };

  constructor(opts: SocketIoTrackerConnectionOptions) {
    super();
    this.#joinTimeoutMs = opts.joinTimeoutMs ?? 10_000;
    this.#ackTimeoutMs = opts.ackTimeoutMs ?? 10_000;
    this.#kickDelayMs = opts.reconnectAfterKickMs ?? 5000;
    this.#socket = io(opts.url, {
      transports: ['websocket'],
      forceNew: true,
      ...RECONNECTION_DEFAULTS,
      ...opts.socketOptions,
    });
    const s = this.#socket;
    s.on('connect', () => {
      if (this.#everConnected) {
        this.#stats.reconnects++;
        this.emit('reconnected');
      }
      this.#everConnected = true;
    });
    s.on('connect_error', () => {
      this.#stats.connectErrors++;
      // Refused by the tracker's middleware (e.g. rate-limited): socket.io gives up; try again later.
      if (!s.active) this.#retryLater();
    });
    s.on('disconnect', (reason) => {
      if (this.#closed) return;
      this.emit('disconnected', reason);
      if (reason === 'io server disconnect') this.#retryLater();
    });
    // Checked without a schema library (protocol/tracker-validate.ts): browsers load this file.
    s.on('neighbours', (u: unknown) => this.#push('neighbours', parseNeighboursUpdate, u));
    s.on('signal', (m: unknown) => this.#push('signal', parsePushedSignal, m));
    s.on('channel', (c: unknown) => this.#push('channel', parseChannelInfo, c));
    s.on('attestation', (a: unknown) => {
      const r = parseAttestation(a);
      if (r.ok) this.emit('attestation', r.attestation);
      else this.#invalid('attestation', r.message);
    });
  }

  /** Connected to the tracker right now. */
  get connected(): boolean {
    return this.#socket.connected;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Counters (a copy). */
  get stats(): TrackerConnectionStats {
    return { ...this.#stats, invalidPushes: { ...this.#stats.invalidPushes } };
  }

  /**
   * Joins a channel. Resolves with the tracker's answer (`ok: false` when it refused); rejects when it
   * does not answer within the join timeout, when the connection drops meanwhile, when the answer is
   * malformed, or after `close`. Sent as soon as the socket is connected.
   */
  async join(req: JoinRequest): Promise<Ack<JoinResult>> {
    const ack = await this.#ask('join', req, this.#joinTimeoutMs);
    if (isOk(ack)) {
      const r = parseJoinResult(ack);
      if (!r.ok) throw new Error(`tracker sent a malformed join answer (${r.message})`);
      return { ...r.value, ok: true };
    }
    return refusal(ack, 'join');
  }

  /** Fire and forget: dropped while disconnected (stale reports are useless); refusals are counted. */
  report(report: PeerReport): void {
    if (this.#closed || !this.#socket.connected) {
      this.#stats.reportsDropped++;
      return;
    }
    this.#withTimeout(this.#ackTimeoutMs).emit('report', report, (err: Error | null, ack?: unknown) => {
      if (err || !ack || isOk(ack)) return;
      this.#stats.reportsRefused++;
      const e = parseAckError(ack);
      this.#stats.lastReportError = e.ok ? `${e.value.error.code}: ${e.value.error.message}` : 'malformed';
    });
  }

  /**
   * Relays signaling data to a peer the tracker introduced. Resolves with the tracker's answer; rejects
   * when disconnected, on timeout, or on a malformed answer.
   */
  async signal(to: string, data: SignalData): Promise<Ack<object>> {
    if (!this.#closed && !this.#socket.connected) throw new Error('not connected to the tracker');
    const ack = await this.#ask('signal', { to, data }, this.#ackTimeoutMs);
    return isOk(ack) ? { ok: true } : refusal(ack, 'signal');
  }

  /** Tells the tracker that a neighbour misbehaved (fire and forget; dropped while disconnected). */
  reportPeer(peer: string, code: PeerComplaintCode): void {
    if (this.#closed || !this.#socket.connected) return;
    this.#withTimeout(this.#ackTimeoutMs).emit('report-peer', { peer, code }, () => {});
  }

  /** Leaves the channel (the connection stays open for a later `join`). */
  leave(): void {
    if (this.#closed || !this.#socket.connected) return;
    this.#withTimeout(this.#ackTimeoutMs).emit('leave', () => {});
  }

  /** Closes the connection for good (idempotent; no event is emitted afterwards). */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#kickTimer);
    this.#socket.disconnect();
    this.#socket.removeAllListeners();
    this.removeAllListeners();
  }

  #retryLater(): void {
    if (this.#closed || this.#kickDelayMs <= 0) return;
    clearTimeout(this.#kickTimer);
    this.#kickTimer = setTimeout(() => {
      this.#kickTimer = undefined;
      if (!this.#closed && !this.#socket.active) this.#socket.connect();
    }, this.#kickDelayMs);
  }

  async #ask(event: 'join' | 'signal', payload: unknown, timeoutMs: number): Promise<unknown> {
    if (this.#closed) throw new Error('tracker connection is closed');
    try {
      return await this.#withTimeout(timeoutMs).emitWithAck(event, payload);
    } catch (err) {
      const why = (err as Error).message;
      throw new Error(
        why === 'operation has timed out'
          ? `tracker did not answer ${event} within ${timeoutMs} ms`
          : `${event} failed: ${why}`,
        { cause: err },
      );
    }
  }

  /**
   * The socket with an ack timeout, untyped: answers are validated here rather than trusted (and
   * socket.io's types do not model optional acks with a timeout).
   */
  #withTimeout(ms: number): {
    emit(event: string, ...args: unknown[]): void;
    emitWithAck(event: string, ...args: unknown[]): Promise<unknown>;
  } {
    return this.#socket.timeout(ms) as never;
  }

  #push<E extends 'neighbours' | 'signal' | 'channel'>(
    event: E,
    parse: (payload: unknown) => Validated<Parameters<TrackerConnectionEvents[E]>[0]>,
    payload: unknown,
  ): void {
    if (this.#closed) return;
    const r = parse(payload);
    if (!r.ok) return this.#invalid(event, r.message);
    const args = [r.value] as unknown as Parameters<TrackerConnectionEvents[E]>;
    this.emit(event, ...args);
  }

  #invalid(event: string, why: string): void {
    this.#stats.invalidPushes[event] = (this.#stats.invalidPushes[event] ?? 0) + 1;
    this.#stats.lastInvalid = `${event}: ${why}`;
  }
}

function isOk(ack: unknown): ack is { ok: true } {
  return typeof ack === 'object' && ack !== null && (ack as { ok?: unknown }).ok === true;
}

function refusal(ack: unknown, event: string): Ack<never> {
  const e = parseAckError(ack);
  if (!e.ok) throw new Error(`tracker sent a malformed ${event} answer (${e.message})`);
  return e.value;
}
