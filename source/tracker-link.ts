/**
 * Keeps a channel registered with the tracker: registers (and re-registers after reconnects and status
 * changes), pushes every attestation, and reports the origin's byte counters for offload.
 */
import { io, type Socket } from 'socket.io-client';
import createDebug from 'debug';
import {
  originPaths,
  TRACKER_PROTOCOL_VERSION,
  TypedEmitter,
  type Ack,
  type Attestation,
  type ChannelRegistration,
  type ClientToServerEvents,
  type ServerToClientEvents,
  type TrackerLinkErrorCode,
} from '../protocol/index.ts';
import type { SourceChannel } from './channel.ts';
import { peakBandwidthBps } from './config.ts';
import type { Origin } from './origin.ts';

const debug = createDebug('peertv:source:tracker-link');

export interface TrackerLinkOptions {
  trackerUrl: string;
  channel: SourceChannel;
  origin: Origin;
  countersIntervalMs?: number;
}

export type TrackerLinkEvents = {
  registered: () => void;
  /**
   * 'tracker-refused' (the channel is pinned to another key, a stale or invalid registration, rate
   * limits) or 'tracker-unreachable'.
   */
  error: (info: { code: TrackerLinkErrorCode; message: string }) => void;
};

export class TrackerLink extends TypedEmitter<TrackerLinkEvents> {
  readonly #opts: TrackerLinkOptions;
  readonly #socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: (() => void)[] = [];
  #registered = false;
  #lastSignedAtMs = 0;
  #destroyed = false;

  constructor(opts: TrackerLinkOptions) {
    super();
    this.#opts = opts;
    // Back within a couple of seconds after a tracker restart: viewers wait for the channel to be known.
    this.#socket = io(opts.trackerUrl, {
      transports: ['websocket'],
      reconnectionDelay: 500,
      reconnectionDelayMax: 2000,
    });
    this.#socket.on('connect', () => this.#register());
    this.#socket.on('connect_error', (err) => {
      this.emit('error', { code: 'tracker-unreachable', message: `${opts.trackerUrl}: ${err.message}` });
    });
    this.#socket.on('disconnect', () => (this.#registered = false));
    const { channel } = opts;
    const onSegment = (att: Attestation) => {
      if (this.#registered) this.#socket.emit('source:attestation', att);
    };
    const onStatus = () => this.#register();
    channel.on('segment', onSegment);
    channel.on('broadcast-started', onStatus);
    channel.on('broadcast-ended', onStatus);
    this.#unsubscribe.push(
      () => channel.off('segment', onSegment),
      () => channel.off('broadcast-started', onStatus),
      () => channel.off('broadcast-ended', onStatus),
    );
    this.#timer = setInterval(() => this.#pushCounters(), opts.countersIntervalMs ?? 2000);
    this.#timer.unref();
  }

  get registered(): boolean {
    return this.#registered;
  }

  /** The channel's current registration, signed with its key (each one newer than the last). */
  registration(): ChannelRegistration {
    const { channel, origin } = this.#opts;
    const info = origin.channelInfo(channel);
    const b = channel.broadcast;
    const ladder = b?.ladder ?? channel.settings.ladder;
    const id = channel.settings.id;
    this.#lastSignedAtMs = Math.max(Date.now(), this.#lastSignedAtMs + 1);
    return channel.store.signer.signRegistration({
      protocolVersion: TRACKER_PROTOCOL_VERSION,
      channel: id,
      title: b?.title ?? channel.settings.title,
      originUrl: origin.publicUrl,
      publicKey: channel.store.signer.publicKey,
      status: channel.status,
      segmentDurationS: b?.segmentDurationS ?? channel.settings.segmentDurationS,
      renditions: ladder.map((r) => ({
        name: r.name,
        width: r.width,
        height: r.height,
        bandwidthBps: peakBandwidthBps(r, channel.hasAudio),
      })),
      livePlaylist: channel.status === 'idle' ? null : originPaths.liveMaster(id),
      recordings: (info.recordings as { id: string; title: string }[]).slice(0, 1000).map((r) => ({
        id: r.id,
        title: r.title,
        master: originPaths.recordingMaster(id, r.id),
      })),
      signedAtMs: this.#lastSignedAtMs,
    });
  }

  #register(): void {
    if (this.#destroyed || !this.#socket.connected) return;
    this.#socket.emit('source:register', this.registration(), (ack: Ack<object>) => {
      if (this.#destroyed) return;
      if (ack.ok) {
        this.#registered = true;
        debug('registered %s', this.#opts.channel.settings.id);
        this.emit('registered');
        this.#pushCounters();
      } else {
        this.emit('error', { code: 'tracker-refused', message: `${ack.error.code}: ${ack.error.message}` });
      }
    });
  }

  #pushCounters(): void {
    if (!this.#registered) return;
    const c = this.#opts.origin.counters()[this.#opts.channel.settings.id];
    if (!c) return;
    this.#socket.emit('source:counters', {
      segmentBytes: c.segment.bytes,
      playlistBytes: c.playlist.bytes,
      attestationBytes: c.attestation.bytes,
      segmentRequests: c.segment.requests,
    });
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    clearInterval(this.#timer);
    for (const u of this.#unsubscribe) u();
    this.#socket.disconnect();
    this.removeAllListeners();
  }
}
