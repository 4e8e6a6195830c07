/**
 * A Node peer: the engine with Node's platform parts (real clock, WebRTC through @roamhq/wrtc, fetch,
 * socket.io to the tracker, memory store), plus the headless player for viewers.
 */
import { HeadlessPlayer, type PlayerOptions } from '../core/player.ts';
import { PeerEngine, type EngineOptions } from '../core/engine.ts';
import { MemorySegmentStore } from '../core/segment-store.ts';
import { realClock } from '../platform/clock.ts';
import { fetchHttp } from '../platform/http.ts';
import { loopbackCandidatesOnly, SimplePeerTransport } from '../platform/simple-peer-transport.ts';
import { SocketIoTrackerConnection } from '../platform/tracker-connection.ts';
import type { Transport } from '../core/seams.ts';
import { loadWrtc } from './wrtc.ts';

export interface NodePeerOptions {
  trackerUrl: string;
  engine: Partial<EngineOptions> & Pick<EngineOptions, 'channel'>;
  player?: Partial<PlayerOptions>;
  /** Offer only 127.0.0.1 ICE candidates (tests, benchmarks and the demo stay on this machine). */
  loopbackOnly?: boolean;
  storeBytes?: number;
  /**
   * Wraps the WebRTC transport before the engine gets it (instrumentation; the swarm benchmark's
   * poisoning peers corrupt what they upload this way).
   */
  wrapTransport?: (transport: Transport) => Transport;
}

export interface NodePeer {
  engine: PeerEngine;
  /** The playback model (viewers only). */
  player: HeadlessPlayer | undefined;
  tracker: SocketIoTrackerConnection;
  /** The verified segments this peer holds. */
  store: MemorySegmentStore;
  /** Leaves: the player, the engine (its links and fetches) and the tracker connection. Idempotent. */
  destroy(): void;
}

export async function startNodePeer(opts: NodePeerOptions): Promise<NodePeer> {
  const wrtc = await loadWrtc();
  const tracker = new SocketIoTrackerConnection({ url: opts.trackerUrl });
  const webrtc = new SimplePeerTransport({
    wrtc,
    ...(opts.loopbackOnly && { candidateFilter: loopbackCandidatesOnly }),
  });
  const transport = opts.wrapTransport ? opts.wrapTransport(webrtc) : webrtc;
  const store = new MemorySegmentStore({
    ...(opts.storeBytes !== undefined && { capacityBytes: opts.storeBytes }),
  });
  const engine = new PeerEngine(opts.engine, {
    clock: realClock,
    transport,
    http: fetchHttp,
    tracker,
    store,
  });
  const player = engine.opts.mode === 'viewer' ? new HeadlessPlayer(engine, opts.player) : undefined;
  // A relay keeps a virtual playhead too (it decides what to fetch), but it is not a viewer.
  const relayHead =
    engine.opts.mode === 'relay' ? new HeadlessPlayer(engine, { ...opts.player, abr: false }) : undefined;
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    player?.destroy();
    relayHead?.destroy();
    engine.destroy();
    tracker.destroy();
  };
  try {
    await engine.start();
  } catch (err) {
    destroy();
    throw err;
  }
  return { engine, player, tracker, store, destroy };
}
