/**
 * Child process of `npm run bench` (the swarm benchmark): a group of Node viewers, each the real
 * engine and playback model over real WebRTC on loopback, driven over RPC (see rpc.ts):
 *   join {count, staggerMs, role, uploadCapKbps, p2p}  starts viewers one after another
 *   leave {count}                                      stops that many (churn), keeping their figures
 *   sample {}                                          totals now (bytes, stalls, viewers)
 *   final {}                                           every viewer's figures, CPU time and peak RSS
 * Roles: `honest`; `poison` (uploads corrupted segment data: every data chunk it sends has one byte
 * flipped); `slow` (an upload cap below the stream's bitrate, set by the parent).
 * Honest viewers hash every segment they store (SHA-256) so the parent can check each against what the
 * source published: the count of corrupted segments played or relayed is measured, not assumed.
 */
import crypto from 'node:crypto';
import { decodeMessage, encodeMessage } from '../../../protocol/index.ts';
import type { PeerLink, Transport } from '../../../peer/index.ts';
import { startNodePeer, type NodePeer } from '../../../peer/node/index.ts';
import { serve } from './rpc.ts';

export type ViewerRole = 'honest' | 'poison' | 'slow';

export interface ViewerFigures {
  index: number;
  peerId: string;
  role: ViewerRole;
  joinedAtMs: number;
  leftAtMs: number | null;
  firstTier: boolean;
  rendition: string;
  state: string;
  startupMs: number | null;
  /** From starting the viewer to the engine having joined (tracker, channel info, playlist). */
  joinMs: number | null;
  stalls: number;
  stallMs: number;
  segmentsPlayed: number;
  segmentsOnTime: number;
  httpBytes: number;
  p2pBytes: number;
  uploadedBytes: number;
  /** Latency behind the newest published segment, sampled every second while playing (s). */
  latencyS: number[];
  /** Time to load each segment (request to verified bytes), by where it came from (ms). */
  httpSegmentMs: number[];
  p2pSegmentMs: number[];
  /** Segments this viewer rejected (failed verification), and links it closed for bad data. */
  rejected: number;
  badPeersDropped: number;
  /** Honest viewers: `rendition/seq` → SHA-256 (hex) of every segment stored. */
  stored: Record<string, string>;
}

export type SwarmViewerCommands = {
  join: {
    args: { count: number; staggerMs: number; role: ViewerRole; uploadCapKbps: number; p2p: boolean };
    result: number[];
  };
  leave: { args: { count: number }; result: number };
  sample: {
    args: object;
    result: {
      viewers: number;
      httpBytes: number;
      p2pBytes: number;
      uploadedBytes: number;
      stalls: number;
      playing: number;
    };
  };
  final: {
    args: object;
    result: {
      viewers: ViewerFigures[];
      cpuUserMs: number;
      cpuSystemMs: number;
      wallMs: number;
      rssMaxBytes: number;
    };
  };
};

const [trackerArg, channelArg, renditionArg, indexBase, originUrl] = process.argv.slice(2);
if (!trackerArg || !channelArg || !renditionArg || !originUrl)
  throw new Error('usage: swarm-viewers trackerUrl channel rendition indexBase originUrl');
const [trackerUrl, channel, rendition] = [trackerArg, channelArg, renditionArg];

/** Flips one byte of every `data` chunk this peer sends: a poisoning neighbour. */
function corrupting(inner: Transport): Transport {
  return {
    createLink(opts) {
      const link: PeerLink = inner.createLink(opts);
      const send = link.send.bind(link);
      link.send = (bytes: Uint8Array) => {
        let msg;
        try {
          msg = decodeMessage(bytes);
        } catch {
          return send(bytes);
        }
        if (msg.type !== 'data' || msg.bytes.byteLength === 0) return send(bytes);
        const bad = msg.bytes.slice();
        bad[bad.length >> 1]! ^= 0xff;
        send(encodeMessage({ ...msg, bytes: bad }));
      };
      return link;
    },
  };
}

interface Viewer {
  peer: NodePeer;
  figures: ViewerFigures;
}

const t0 = Date.now();
const cpu0 = process.cpuUsage();
let rssMax = 0;
let nextIndex = Number(indexBase ?? 0);
const live: Viewer[] = [];
const gone: ViewerFigures[] = [];

function snapshot(v: Viewer): ViewerFigures {
  const { peer, figures } = v;
  const p = peer.player!;
  return {
    ...figures,
    peerId: peer.engine.peerId,
    firstTier: peer.engine.firstTier,
    rendition: peer.engine.rendition,
    state: p.state,
    stalls: p.stalls,
    stallMs: p.stallMs,
    segmentsPlayed: p.segmentsPlayed,
    segmentsOnTime: p.segmentsOnTime,
    httpBytes: peer.engine.httpBytes,
    p2pBytes: peer.engine.p2pBytes,
    uploadedBytes: peer.engine.uploads.uploadedBytes,
  };
}

const sampler = setInterval(() => {
  rssMax = Math.max(rssMax, process.memoryUsage().rss);
  for (const v of live) {
    const l = v.peer.player?.latencyS;
    if (l !== undefined && v.peer.player?.state === 'playing') v.figures.latencyS.push(l);
  }
}, 1000);

async function startViewer(role: ViewerRole, uploadCapKbps: number, p2p: boolean): Promise<number> {
  const index = nextIndex++;
  const figures: ViewerFigures = {
    index,
    peerId: '',
    role,
    joinedAtMs: Date.now() - t0,
    leftAtMs: null,
    firstTier: false,
    rendition,
    state: 'loading',
    startupMs: null,
    joinMs: null,
    stalls: 0,
    stallMs: 0,
    segmentsPlayed: 0,
    segmentsOnTime: 0,
    httpBytes: 0,
    p2pBytes: 0,
    uploadedBytes: 0,
    latencyS: [],
    httpSegmentMs: [],
    p2pSegmentMs: [],
    rejected: 0,
    badPeersDropped: 0,
    stored: {},
  };
  const joinStarted = performance.now();
  const peer = await startNodePeer({
    trackerUrl,
    loopbackOnly: true,
    engine: {
      channel,
      rendition,
      kind: 'node',
      mode: 'viewer',
      uploadCapKbps,
      p2p,
      // HTTP-only viewers never join the tracker: they go straight to the origin.
      originUrl,
      ...(uploadCapKbps > 0 && { declaredUploadKbps: uploadCapKbps }),
    },
    ...(role === 'poison' && { wrapTransport: corrupting }),
  });
  figures.joinMs = performance.now() - joinStarted;
  peer.player!.on('playing', ({ startupMs }) => (figures.startupMs = startupMs));
  peer.engine.on('segment-rejected', () => figures.rejected++);
  peer.engine.on('segment-loaded', ({ source, ms }) =>
    (source === 'p2p' ? figures.p2pSegmentMs : figures.httpSegmentMs).push(ms),
  );
  peer.engine.on('peer-closed', ({ code }) => {
    if (code === 'peer-sent-bad-segment') figures.badPeersDropped++;
  });
  if (role !== 'poison')
    peer.store.on('added', ({ rendition: r, seqs }) => {
      for (const seq of seqs) {
        const s = peer.store.get(r, seq);
        if (s) figures.stored[`${r}/${seq}`] = crypto.createHash('sha256').update(s.bytes).digest('hex');
      }
    });
  live.push({ peer, figures });
  return index;
}

const { emit } = serve<SwarmViewerCommands>(
  {
    async join({ count, staggerMs, role, uploadCapKbps, p2p }) {
      const started: number[] = [];
      for (let i = 0; i < count; i++) {
        started.push(await startViewer(role, uploadCapKbps, p2p));
        if (i < count - 1) await new Promise((r) => setTimeout(r, staggerMs));
      }
      return started;
    },
    leave({ count }) {
      let n = 0;
      while (n < count && live.length > 0) {
        const v = live.splice(Math.floor(Math.random() * live.length), 1)[0]!;
        gone.push({ ...snapshot(v), leftAtMs: Date.now() - t0 });
        v.peer.destroy();
        n++;
      }
      return n;
    },
    sample() {
      return {
        viewers: live.length,
        httpBytes:
          live.reduce((s, v) => s + v.peer.engine.httpBytes, 0) + gone.reduce((s, f) => s + f.httpBytes, 0),
        p2pBytes:
          live.reduce((s, v) => s + v.peer.engine.p2pBytes, 0) + gone.reduce((s, f) => s + f.p2pBytes, 0),
        uploadedBytes:
          live.reduce((s, v) => s + v.peer.engine.uploads.uploadedBytes, 0) +
          gone.reduce((s, f) => s + f.uploadedBytes, 0),
        stalls:
          live.reduce((s, v) => s + (v.peer.player?.stalls ?? 0), 0) + gone.reduce((s, f) => s + f.stalls, 0),
        playing: live.filter((v) => v.peer.player?.state === 'playing').length,
      };
    },
    final() {
      clearInterval(sampler);
      const cpu = process.cpuUsage(cpu0);
      return {
        viewers: [...gone, ...live.map(snapshot)],
        cpuUserMs: cpu.user / 1000,
        cpuSystemMs: cpu.system / 1000,
        wallMs: Date.now() - t0,
        rssMaxBytes: rssMax,
      };
    },
  },
  async () => {
    clearInterval(sampler);
    for (const v of live) v.peer.destroy();
    // wrtc keeps native handles a moment after close.
    await new Promise((r) => setTimeout(r, 500));
  },
);
emit('ready', { pid: process.pid });
