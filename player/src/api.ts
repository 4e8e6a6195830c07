/**
 * The public API: `PeerTV.attach(video, { tracker, channel })` plays a channel (or a recording) with
 * hls.js, loading fragments through the P2P engine. Playlists always come from the origin.
 */
import Hls from 'hls.js';
import type { ChannelInfo, PlayerNoticeCode } from '../../protocol/index.ts';
import {
  atOrigin,
  isErrorCode,
  originPaths,
  PeerTvError,
  PLAYER_NOTICE_CODES,
  TypedEmitter,
} from '../../protocol/index.ts';
import {
  fetchHttp,
  IceNatProber,
  loopbackCandidatesOnly,
  MemorySegmentStore,
  PeerEngine,
  realClock,
  SimplePeerTransport,
  SocketIoTrackerConnection,
} from '../../peer/index.ts';
import { makeFragmentLoader } from './loader.ts';
import { StallAttribution, type StallCause } from './stalls.ts';

export type { StallCause } from './stalls.ts';

export interface AttachOptions {
  /** Tracker URL (the page's own origin when served by the tracker). */
  tracker: string;
  channel: string;
  /** Play this recording (broadcast id) instead of the live stream. */
  recording?: string;
  /** Origin URL, for when the tracker cannot be reached. */
  originUrl?: string;
  /** False: never use P2P. Default true (off automatically without WebRTC). */
  p2p?: boolean;
  /** Upload cap in kbit/s (0 = none). */
  uploadKbps?: number;
  autoplay?: boolean;
  /** Offer only 127.0.0.1 WebRTC candidates (tests and demos on one machine). */
  loopbackOnly?: boolean;
}

export type PlayerState = 'loading' | 'playing' | 'paused' | 'stalled' | 'ended' | 'offline' | 'error';

export interface PlayerStats {
  state: PlayerState;
  live: boolean;
  httpBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
  /** Share of fetched segment bytes that came from peers (0..1). */
  p2pShare: number;
  peers: number;
  rendition: string;
  /** hls.js level index in use, and whether the choice is automatic. */
  level: number;
  autoLevel: boolean;
  bufferS: number;
  /** Seconds behind the live edge (live only). */
  latencyS: number | null;
  downloadKbps: number;
  uploadKbps: number;
  stalls: number;
  /** Stalls by cause (see stalls.ts): `p2p`, `cpu`, `source`, `origin`, `unknown`. */
  stallsByCause: Record<StallCause, number>;
  /** Time spent in finished stalls, ms. */
  stallMs: number;
  trackerConnected: boolean;
  webrtc: boolean;
}

export interface Level {
  index: number;
  name: string;
  width: number;
  height: number;
  bandwidthBps: number;
}

export type PlayerEvents = {
  state: (state: PlayerState) => void;
  /** Every second. */
  stats: (stats: PlayerStats) => void;
  levels: (levels: Level[]) => void;
  'level-switched': (level: Level) => void;
  /** A stall ended: how long it lasted and what caused it. */
  stall: (info: { cause: StallCause; durationMs: number }) => void;
  /**
   * `unknown-channel` (the tracker has no such channel), `channel-offline`, `broadcast-ended`,
   * `tracker-unreachable`, `webrtc-unavailable`, `p2p-unavailable`, `media-error`, `error` (see
   * PLAYER_NOTICE_CODES).
   */
  notice: (info: { code: PlayerNoticeCode; message: string }) => void;
};

export const webrtcAvailable = (): boolean => typeof globalThis.RTCPeerConnection === 'function';

/** An HTTP answer other than 200 (the server is up and said no). */
class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { cache: 'no-cache' });
  if (!res.ok) throw new HttpStatusError(res.status, `${url}: HTTP ${res.status}`);
  return res.json() as Promise<unknown>;
}

const failure = (code: PlayerNoticeCode, message: string) => new PeerTvError(code, message);

export class PeerTVPlayer extends TypedEmitter<PlayerEvents> {
  readonly video: HTMLVideoElement;
  readonly opts: AttachOptions;
  hls: Hls | undefined;
  engine: PeerEngine | undefined;
  channelInfo: ChannelInfo | undefined;
  state: PlayerState = 'loading';
  stalls = 0;
  #tracker: SocketIoTrackerConnection | undefined;
  #levels: Level[] = [];
  #fetchMs = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #destroyed = false;
  #trackerUp = false;
  readonly #stallCauses: StallAttribution;
  readonly #cleanup: (() => void)[] = [];

  constructor(video: HTMLVideoElement, opts: AttachOptions) {
    super();
    this.video = video;
    this.opts = opts;
    this.#stallCauses = new StallAttribution({
      bufferEndS: () => this.#bufferS() + video.currentTime,
      liveEdgeS: () => {
        const details = this.hls?.levels[this.hls.currentLevel]?.details;
        return this.live && details?.live ? details.edge : undefined;
      },
    });
    void this.#start().catch((err: Error & { code?: unknown }) => {
      if (this.#destroyed) return;
      const code = isErrorCode(PLAYER_NOTICE_CODES, err.code) ? err.code : 'error';
      this.#setState(code === 'channel-offline' ? 'offline' : 'error');
      this.emit('notice', { code, message: err.message });
    });
  }

  get live(): boolean {
    return this.opts.recording === undefined;
  }

  async #start(): Promise<void> {
    const { channel } = this.opts;
    const tracker = this.opts.tracker.replace(/\/+$/, '');
    // The directory entry says where the origin is and whether the channel is on air.
    try {
      this.channelInfo = (await getJson(
        `${tracker}/api/channels/${encodeURIComponent(channel)}`,
      )) as ChannelInfo;
    } catch (err) {
      // The tracker answered: there is no such channel (not the same as the tracker being down).
      if (err instanceof HttpStatusError && err.status === 404)
        throw failure('unknown-channel', `there is no channel “${channel}” on this tracker`);
      if (!this.opts.originUrl)
        throw failure('tracker-unreachable', `tracker unreachable: ${(err as Error).message}`);
      this.emit('notice', {
        code: 'tracker-unreachable',
        message: 'tracker unreachable: playing from the origin',
      });
    }
    if (this.#destroyed) return;
    const originUrl = (this.channelInfo?.originUrl ?? this.opts.originUrl ?? '').replace(/\/+$/, '');
    const live = this.live;
    if (live && this.channelInfo && this.channelInfo.status !== 'live') {
      const ended = this.channelInfo.status === 'ended';
      throw failure(
        ended ? 'broadcast-ended' : 'channel-offline',
        ended ? 'the broadcast has ended' : 'the channel is offline',
      );
    }
    const masterUrl = atOrigin(
      originUrl,
      live ? originPaths.liveMaster(channel) : originPaths.recordingMaster(channel, this.opts.recording!),
    );

    const p2p = this.opts.p2p !== false && webrtcAvailable();
    if (this.opts.p2p !== false && !webrtcAvailable())
      this.emit('notice', {
        code: 'webrtc-unavailable',
        message: 'WebRTC is not available: playing from the origin',
      });
    if (p2p && this.channelInfo) {
      this.#tracker = new SocketIoTrackerConnection({ url: tracker });
      this.#tracker.on('disconnected', () => {
        this.#trackerUp = false;
        this.emit('notice', {
          code: 'tracker-unreachable',
          message: 'tracker connection lost: playing from the origin and current peers',
        });
      });
      // Connected again; in the swarm again once the engine has joined.
      this.#tracker.on('reconnected', () => (this.#trackerUp = false));
    }
    const engine = new PeerEngine(
      {
        channel,
        kind: 'browser',
        mode: 'viewer',
        rendition: 'auto',
        p2p: p2p && this.#tracker !== undefined,
        followPlayerRendition: true,
        originUrl,
        masterUrl,
        uploadCapKbps: this.opts.uploadKbps ?? 0,
        declaredUploadKbps: this.opts.uploadKbps || 5000,
      },
      {
        clock: realClock,
        transport: new SimplePeerTransport(
          this.opts.loopbackOnly ? { candidateFilter: loopbackCandidatesOnly } : {},
        ),
        http: fetchHttp,
        tracker: this.#tracker,
        store: new MemorySegmentStore({ capacityBytes: 96 * 1024 * 1024 }),
        // A browser cannot run RFC 5780: it learns its NAT's mapping through ICE (the tracker's natProbe).
        ...(IceNatProber.available() && { natProber: new IceNatProber() }),
      },
    );
    this.engine = engine;
    engine.on('segment-loaded', (s) => {
      this.#fetchMs.set(`${s.rendition}/${s.mediaSequence}`, s.ms);
      if (s.late && s.source === 'http') this.#stallCauses.originLate();
    });
    engine.on('p2p-late', () => this.#stallCauses.p2pLate());
    engine.on('error', ({ code, message }) => {
      if (code === 'tracker-unreachable') this.emit('notice', { code, message });
    });
    // Joined (again): after a tracker restart the engine retries until the channel is registered again.
    engine.on('joined', () => (this.#trackerUp = true));
    engine.setPlaybackProbe(() => ({ bufferS: this.#bufferS(), stalls: this.stalls }));
    // Playback never waits for P2P: hls.js starts from the origin at once, while the engine joins the
    // tracker and fetches the channel key beside it; the fragment loader hands segments to the engine
    // once it is ready (before, it fetches them itself and gives the engine the bytes to share).
    this.#attachHls(masterUrl);
    // Ready after hls.js chose its level: the engine learns it now.
    engine.on('ready', () => {
      const level = this.hls ? this.#levels[this.hls.loadLevel] : undefined;
      if (level) engine.setRendition(level.name);
    });
    engine.start().then(
      () => {
        if (this.#destroyed) engine.destroy();
      },
      (err: Error & { code?: string }) => {
        if (this.#destroyed) return;
        // Playback goes on from the origin; the engine is out of the way.
        engine.destroy();
        this.emit('notice', {
          code: err.code === 'unknown-channel' ? 'unknown-channel' : 'p2p-unavailable',
          message: `P2P off: ${err.message}`,
        });
      },
    );
  }

  #attachHls(masterUrl: string): void {
    if (!Hls.isSupported()) {
      this.emit('notice', {
        code: 'media-error',
        message: 'this browser cannot play HLS with Media Source Extensions',
      });
      this.#setState('error');
      return;
    }
    const channel = this.opts.channel;
    const Fallback = Hls.DefaultConfig.loader as unknown as new (c: unknown) => never;
    const hls = new Hls({
      fLoader: makeFragmentLoader(
        {
          engine: () => this.engine,
          channel,
          video: this.video,
          adopt: (r, seq, bytes) => this.engine?.adopt(r, seq, bytes),
          fetchMs: (r, seq) => this.#fetchMs.get(`${r}/${seq}`),
        },
        Fallback,
      ),
      // Live: start near the edge and stay there, catching up by playing up to 10 % faster (never
      // by a stall or a jump unless 6 segments behind).
      liveSyncDurationCount: 2,
      liveMaxLatencyDurationCount: 6,
      maxLiveSyncPlaybackRate: 1.1,
      maxBufferLength: this.live ? 10 : 60,
      backBufferLength: 30,
    });
    this.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
      this.#levels = data.levels.map((l, index) => ({
        index,
        name: /([^/]+)\.m3u8/.exec(l.url[0] ?? '')?.[1] ?? `${l.height}p`,
        width: l.width,
        height: l.height,
        bandwidthBps: l.bitrate,
      }));
      this.emit('levels', this.levels());
      if (this.opts.autoplay !== false) void this.video.play().catch(() => this.#setState('paused'));
    });
    // The engine fetches ahead, shares (and its neighbours are) the rendition hls.js loads: from the
    // moment hls.js picks it, not once its first fragment plays.
    hls.on(Hls.Events.LEVEL_SWITCHING, (_e, data) => {
      const level = this.#levels[data.level];
      if (level) this.engine?.setRendition(level.name);
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
      const level = this.#levels[data.level];
      if (!level) return;
      this.engine?.setRendition(level.name);
      this.emit('level-switched', level);
    });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
      this.emit('notice', { code: 'media-error', message: `${data.type}: ${data.details}` });
    });
    hls.loadSource(masterUrl);
    hls.attachMedia(this.video);

    const v = this.video;
    const on = (event: string, fn: () => void) => {
      v.addEventListener(event, fn);
      this.#cleanup.push(() => v.removeEventListener(event, fn));
    };
    on('playing', () => this.#setState('playing'));
    on('pause', () => this.#setState('paused'));
    on('waiting', () => {
      // A seek also makes the element wait: that is not a stall.
      if (this.state === 'playing' && !v.seeking) {
        this.stalls++;
        this.#stallCauses.started();
        this.#setState('stalled');
      }
    });
    const stallOver = () => {
      const stall = this.#stallCauses.ended();
      if (stall) this.emit('stall', stall);
    };
    on('playing', stallOver);
    on('seeking', stallOver);
    on('pause', stallOver);
    on('ended', () => {
      this.#setState('ended');
      if (this.live) this.emit('notice', { code: 'broadcast-ended', message: 'the broadcast has ended' });
    });
    this.#timer = setInterval(() => this.emit('stats', this.stats()), 1000);
    // Leaving the page: say goodbye to neighbours and the tracker now, not after WebRTC times out.
    const leave = () => this.destroy();
    globalThis.addEventListener?.('pagehide', leave);
    this.#cleanup.push(() => globalThis.removeEventListener?.('pagehide', leave));
  }

  #setState(s: PlayerState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  #bufferS(): number {
    const v = this.video;
    for (let i = 0; i < v.buffered.length; i++)
      if (v.buffered.start(i) <= v.currentTime + 0.1 && v.currentTime <= v.buffered.end(i))
        return v.buffered.end(i) - v.currentTime;
    return 0;
  }

  levels(): Level[] {
    return this.#levels.map((l) => ({ ...l }));
  }

  /** A level index, or -1 for automatic (ABR). */
  setLevel(index: number): void {
    if (!this.hls || !Number.isInteger(index) || index < -1 || index >= this.#levels.length) return;
    this.hls.currentLevel = index;
  }

  /** Jumps to the live edge. */
  goLive(): void {
    const pos = this.hls?.liveSyncPosition;
    if (this.live && pos !== null && pos !== undefined) this.video.currentTime = pos;
    void this.video.play().catch(() => {});
  }

  stats(): PlayerStats {
    const e = this.engine?.stats();
    const total = (e?.httpBytes ?? 0) + (e?.p2pBytes ?? 0);
    const hls = this.hls;
    const latency =
      this.live && hls?.latency !== undefined && Number.isFinite(hls.latency) ? hls.latency : null;
    return {
      state: this.state,
      live: this.live,
      httpBytes: e?.httpBytes ?? 0,
      p2pBytes: e?.p2pBytes ?? 0,
      uploadedBytes: e?.uploadedBytes ?? 0,
      p2pShare: total > 0 ? (e?.p2pBytes ?? 0) / total : 0,
      peers: e?.peers ?? 0,
      rendition: this.#levels[hls?.currentLevel ?? -1]?.name ?? e?.rendition ?? '',
      level: hls?.currentLevel ?? -1,
      autoLevel: hls?.autoLevelEnabled ?? true,
      bufferS: this.#bufferS(),
      latencyS: latency,
      downloadKbps: e?.downloadKbps ?? 0,
      uploadKbps: e?.uploadKbps ?? 0,
      stalls: this.stalls,
      stallsByCause: { ...this.#stallCauses.counts },
      stallMs: Math.round(this.#stallCauses.totalMs),
      trackerConnected: this.#trackerUp && (this.#tracker?.connected ?? false),
      webrtc: webrtcAvailable(),
    };
  }

  /** Segments already fetched and held for the current rendition (for a download-progress bar). */
  heldSegments(): number[] {
    return this.engine
      ? [...this.engine.known.keys()].filter((s) => this.engine!.hasSegment(this.engine!.rendition, s))
      : [];
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    clearInterval(this.#timer);
    this.#stallCauses.destroy();
    for (const c of this.#cleanup) c();
    this.hls?.destroy();
    this.engine?.destroy();
    this.#tracker?.destroy();
    this.removeAllListeners();
  }
}

export function attach(video: HTMLVideoElement, opts: AttachOptions): PeerTVPlayer {
  if (!(video instanceof HTMLVideoElement)) throw new TypeError('attach() needs a <video> element');
  if (typeof opts?.tracker !== 'string' || typeof opts.channel !== 'string')
    throw new TypeError('attach() needs { tracker, channel }');
  return new PeerTVPlayer(video, opts);
}
