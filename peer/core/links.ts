/**
 * The engine's links to neighbours: dials the peers the tracker introduces (the one whose id sorts
 * first offers), answers signaling, drops links that do not connect in time, redials a lost link a
 * few times, bans a neighbour closed for a fault (and reports it to the tracker once), and reads each
 * link's route after it opened.
 */
import {
  PEER_COMPLAINT_CODES,
  type IceServer,
  type PeerComplaintCode,
  type PeerErrorCode,
  type SignalData,
} from '../../protocol/index.ts';
import { BanList, type BudgetOptions, type StreamLadder } from './budget.ts';
import { Neighbour } from './neighbour.ts';
import type { Log } from './log.ts';
import type { Clock, LinkRoute, TimerHandle, TrackerConnection, Transport } from './seams.ts';
import type { UploadManager } from './upload.ts';

/** When a connected link's route (selected candidate pair) is read, in ms after the channel opened. */
const ROUTE_CHECKS_MS = [0, 250, 500, 1000, 2000, 4000];

const isComplaint = (code: PeerErrorCode | undefined): code is PeerComplaintCode =>
  (PEER_COMPLAINT_CODES as readonly string[]).includes(code ?? '');

export interface LinksOptions {
  channel: string;
  p2p: boolean;
  maxNeighbours: number;
  connectTimeoutMs: number;
  banMs: number;
  unresponsiveBanMs: number;
  maxBanned: number;
  minThroughputSampleBytes: number;
  priorNeighbourBps: number;
}

export interface LinksDeps {
  clock: Clock;
  transport: Transport;
  tracker: TrackerConnection | undefined;
  uploads: UploadManager;
  ladder: StreamLadder;
  budget: BudgetOptions;
  /** Our id in the current tracker session, and the ICE servers it gave. */
  peerId(): string;
  iceServers(): IceServer[];
  /** Rendition we share, and what we hold of it (announced when a link opens). */
  heldRanges(): { rendition: string; ranges: [number, number][] };
  /** Someone wants `peer-route` events (reading routes costs stats calls). */
  wantsRoutes(): boolean;
  connected(info: { id: string; connectMs: number }): void;
  route(info: { id: string; route: LinkRoute; connectMs: number; first: boolean }): void;
  closed(info: { id: string; reason: string; code?: PeerErrorCode }): void;
  /** Something a scheduling decision depends on changed (a `have`, a link closing). */
  changed(): void;
  /** The first bytes of a download from a neighbour arrived (neighbours may ask us for it now). */
  firstBytes(rendition: string, mediaSequence: number): void;
  /** Debug log (`peertv:peer:<id>:links`). */
  log?: Log;
}

export class Links {
  readonly neighbours = new Map<string, Neighbour>();
  readonly #opts: LinksOptions;
  readonly #deps: LinksDeps;
  readonly #introduced = new Set<string>();
  readonly #banned: BanList;
  /** Peers already reported to the tracker (once each). */
  readonly #reported: BanList;
  readonly #redials = new Map<string, number>();
  readonly #connectTimers = new Map<string, TimerHandle>();
  #destroyed = false;

  constructor(opts: LinksOptions, deps: LinksDeps) {
    this.#opts = opts;
    this.#deps = deps;
    this.#banned = new BanList(opts.maxBanned);
    this.#reported = new BanList(opts.maxBanned);
  }

  /** Links that completed their handshake. */
  openNeighbours(): Neighbour[] {
    return [...this.neighbours.values()].filter((n) => n.open);
  }

  /** The tracker introduced a peer: dial it if we are the pair's initiator. */
  introduce(id: string): void {
    if (this.#destroyed || !this.#opts.p2p || id === this.#deps.peerId() || this.#isBanned(id)) return;
    this.#introduced.add(id);
    // Of an introduced pair, the peer whose id sorts first sends the offer.
    if (!this.neighbours.has(id) && this.#deps.peerId() < id && this.#makeRoom()) this.#connect(id, true);
  }

  /**
   * The tracker no longer pairs us: the link stays while it works (the other side may only have lost
   * its tracker session); a page that leaves says bye itself, and dead links close on their own.
   */
  unintroduce(id: string): void {
    this.#introduced.delete(id);
  }

  /** Signaling data from a peer: answered by a new link if there is room. */
  signal(from: string, data: SignalData): void {
    if (this.#destroyed || !this.#opts.p2p || this.#isBanned(from)) return;
    let n = this.neighbours.get(from);
    if (!n) {
      // Room for a peer the tracker pairs us with, at the expense of one it no longer does.
      if (
        this.neighbours.size >= this.#opts.maxNeighbours &&
        !(this.#introduced.has(from) && this.#makeRoom())
      )
        return;
      n = this.#connect(from, false);
    }
    n.link.signal(data);
  }

  /**
   * Whether a link may be added: below the cap, or at it by closing the link the tracker no longer
   * pairs us with that we received least from (kept while it worked; a recommended peer comes first).
   */
  #makeRoom(): boolean {
    if (this.neighbours.size < this.#opts.maxNeighbours) return true;
    let spare: Neighbour | undefined;
    for (const n of this.neighbours.values())
      if (!this.#introduced.has(n.id) && (!spare || n.bytesReceived < spare.bytesReceived)) spare = n;
    if (!spare) return false;
    this.#deps.log?.('closing %s (no longer recommended) for a recommended neighbour', spare.id);
    spare.destroy('bye', 'replaced by a neighbour the tracker recommends');
    return this.neighbours.size < this.#opts.maxNeighbours;
  }

  #isBanned(id: string): boolean {
    return this.#banned.has(id, this.#deps.clock.now());
  }

  #redial(id: string): void {
    if (this.#destroyed || !this.#introduced.has(id) || this.#deps.peerId() >= id) return;
    const attempt = (this.#redials.get(id) ?? 0) + 1;
    if (attempt > 3) return;
    this.#redials.set(id, attempt);
    this.#deps.log?.('redialling %s in %d s (attempt %d)', id, 2 ** attempt, attempt);
    this.#deps.clock.setTimeout(
      () => {
        if (!this.#destroyed && !this.neighbours.has(id) && this.neighbours.size < this.#opts.maxNeighbours)
          this.#connect(id, true);
      },
      1000 * 2 ** attempt,
    );
  }

  #connect(remoteId: string, initiator: boolean): Neighbour {
    const { clock, transport, tracker, uploads } = this.#deps;
    const link = transport.createLink({
      localId: this.#deps.peerId(),
      remoteId,
      initiator,
      iceServers: this.#deps.iceServers(),
    });
    const n = new Neighbour(
      link,
      clock,
      { peerId: this.#deps.peerId(), channel: this.#opts.channel },
      {
        ladder: this.#deps.ladder,
        budget: this.#deps.budget,
        minThroughputSampleBytes: this.#opts.minThroughputSampleBytes,
        priorBps: this.#opts.priorNeighbourBps,
      },
    );
    const createdAt = clock.now();
    this.neighbours.set(remoteId, n);
    link.on('signal', (data) => {
      void tracker?.signal(remoteId, data).then(
        (ack) => {
          if (!ack.ok) n.destroy('bye', `signaling refused: ${ack.error.code}`);
        },
        // The tracker is unreachable: the link cannot complete and its connect timer closes it.
        () => {},
      );
    });
    link.on('drain', () => uploads.onDrain());
    this.#connectTimers.set(
      remoteId,
      clock.setTimeout(() => {
        if (!n.open) n.destroy('peer-timeout', 'did not connect in time');
      }, this.#opts.connectTimeoutMs),
    );
    n.on('open', () => {
      clock.clearTimeout(this.#connectTimers.get(remoteId));
      this.#connectTimers.delete(remoteId);
      const held = this.#deps.heldRanges();
      n.announce(held.rendition, held.ranges, true);
      const connectMs = Math.round(clock.now() - createdAt);
      this.#deps.connected({ id: remoteId, connectMs });
      // The selected pair shows up in the stats a moment after the channel opened, and ICE may switch
      // to a better pair later (a relayed pair can win the race before hole punching succeeds): look a
      // few times and report each change.
      let lastRoute = '';
      // Only while someone listens (the Node CLI and the benchmarks do; the web player does not).
      const askRoute = (i: number): void => {
        if (!this.#deps.wantsRoutes()) return;
        link.route?.().then(
          (route) => {
            if (this.#destroyed || !n.open) return;
            if (route && route.local !== 'unknown' && route.remote !== 'unknown') {
              const key = `${route.local}/${route.remote}/${route.relayed}`;
              if (key !== lastRoute) {
                const first = lastRoute === '';
                lastRoute = key;
                this.#deps.route({ id: remoteId, route, connectMs, first });
              }
            }
            const next = ROUTE_CHECKS_MS[i + 1];
            if (next !== undefined) clock.setTimeout(() => askRoute(i + 1), next - ROUTE_CHECKS_MS[i]!);
            // Still unknown (a busy machine answers stats late): keep looking every 4 s for a minute.
            else if (lastRoute === '' && i < ROUTE_CHECKS_MS.length + 14)
              clock.setTimeout(() => askRoute(i + 1), 4000);
          },
          () => {}, // stats unavailable: the route stays unknown
        );
      };
      askRoute(0);
    });
    n.on('request', (req) => {
      if (this.#destroyed) return;
      uploads.enqueue(n, req);
    });
    n.on('cancel', (requestId) => uploads.cancel(n, requestId));
    n.on('have', () => this.#deps.changed());
    n.on('receiving', () => this.#deps.changed());
    // Bytes of our downloads from it feed the relays of those segments.
    n.onProgress = (d, first) => {
      if (first) this.#deps.firstBytes(d.rendition, d.mediaSequence);
      uploads.onFeed();
    };
    n.on('close', ({ reason, code }) => {
      clock.clearTimeout(this.#connectTimers.get(remoteId));
      this.#connectTimers.delete(remoteId);
      if (this.neighbours.get(remoteId) === n) this.neighbours.delete(remoteId);
      uploads.forget(n);
      this.#deps.closed({ id: remoteId, reason, ...(code && { code }) });
      // A fault we saw ourselves is reported to the tracker (once per peer), which stops introducing
      // a peer several of its neighbours complained about.
      if (isComplaint(code) && !this.#reported.has(remoteId, clock.now())) {
        this.#reported.ban(remoteId, Infinity);
        tracker?.reportPeer(remoteId, code);
      }
      // A neighbour that broke the protocol, sent bad data or went over its budget is not dialled
      // again (for a while); others are retried a few times (the initiator of the pair dials).
      if (code && code !== 'peer-timeout') {
        const ms = code === 'peer-unresponsive' ? this.#opts.unresponsiveBanMs : this.#opts.banMs;
        this.#banned.ban(remoteId, clock.now() + ms);
        this.#deps.log?.('not dialling %s for %d s (%s)', remoteId, Math.round(ms / 1000), code);
      } else this.#redial(remoteId);
      this.#deps.changed();
    });
    return n;
  }

  /** Says bye on every link and stops dialling. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const t of this.#connectTimers.values()) this.#deps.clock.clearTimeout(t);
    for (const n of this.neighbours.values()) n.destroy('bye', 'leaving');
    this.neighbours.clear();
  }
}
