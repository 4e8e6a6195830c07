/**
 * Child process of `bench:peer`: runs N Node viewers (the real engine and playback model over real
 * WebRTC on loopback) and writes one JSON line per event to stdout:
 *   {"type":"tick", …totals}  every second;  {"type":"final", viewers:[…], cpu, rssMaxBytes}  at the end.
 * argv: trackerUrl channel viewers staggerMs durationS rendition uploadKbps
 */
import { startNodePeer, type NodePeer } from '../../../peer/node/index.ts';

const [trackerUrl, channel, viewersArg, staggerArg, durationArg, rendition, uploadArg] =
  process.argv.slice(2);
if (!trackerUrl || !channel || !rendition)
  throw new Error(
    'usage: viewer-process trackerUrl channel viewers staggerMs durationS rendition uploadKbps',
  );
const viewers = Number(viewersArg);
const staggerMs = Number(staggerArg);
const durationS = Number(durationArg);
const uploadKbps = Number(uploadArg);
const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

interface ViewerLog {
  startupMs: number | undefined;
  latencyS: number[];
  p2pSegmentMs: number[];
  httpSegmentMs: number[];
  rejected: number;
}

const peers: NodePeer[] = [];
const logs: ViewerLog[] = [];
const cpu0 = process.cpuUsage();
const t0 = Date.now();
let rssMax = 0;

const tick = setInterval(() => {
  rssMax = Math.max(rssMax, process.memoryUsage().rss);
  for (const [i, p] of peers.entries()) {
    const l = p.player?.latencyS;
    if (l !== undefined && p.player?.state === 'playing') logs[i]!.latencyS.push(l);
  }
  out({
    type: 'tick',
    at: Date.now() - t0,
    viewers: peers.length,
    httpBytes: peers.reduce((s, p) => s + p.engine.httpBytes, 0),
    p2pBytes: peers.reduce((s, p) => s + p.engine.p2pBytes, 0),
    uploadedBytes: peers.reduce((s, p) => s + p.engine.uploads.uploadedBytes, 0),
    stalls: peers.reduce((s, p) => s + (p.player?.stalls ?? 0), 0),
  });
}, 1000);

for (let i = 0; i < viewers; i++) {
  const log: ViewerLog = {
    startupMs: undefined,
    latencyS: [],
    p2pSegmentMs: [],
    httpSegmentMs: [],
    rejected: 0,
  };
  logs.push(log);
  const peer = await startNodePeer({
    trackerUrl,
    loopbackOnly: true,
    engine: { channel, rendition, kind: 'node', mode: 'viewer', uploadCapKbps: uploadKbps },
  });
  peer.player!.on('playing', ({ startupMs }) => (log.startupMs = startupMs));
  peer.engine.on('segment-loaded', (s) =>
    (s.source === 'p2p' ? log.p2pSegmentMs : log.httpSegmentMs).push(s.ms),
  );
  peer.engine.on('segment-rejected', () => log.rejected++);
  peers.push(peer);
  if (i < viewers - 1) await new Promise((r) => setTimeout(r, staggerMs));
}
await new Promise((r) => setTimeout(r, Math.max(0, durationS * 1000 - (Date.now() - t0))));
clearInterval(tick);
const cpu = process.cpuUsage(cpu0);
out({
  type: 'final',
  wallMs: Date.now() - t0,
  cpuUserMs: cpu.user / 1000,
  cpuSystemMs: cpu.system / 1000,
  rssMaxBytes: rssMax,
  viewers: peers.map((p, i) => ({
    peerId: p.engine.peerId,
    firstTier: p.engine.firstTier,
    rendition: p.engine.rendition,
    state: p.player!.state,
    stalls: p.player!.stalls,
    stallMs: p.player!.stallMs,
    segmentsPlayed: p.player!.segmentsPlayed,
    segmentsOnTime: p.player!.segmentsOnTime,
    httpBytes: p.engine.httpBytes,
    p2pBytes: p.engine.p2pBytes,
    uploadedBytes: p.engine.uploads.uploadedBytes,
    ...logs[i],
  })),
});
for (const p of peers) p.destroy();
setTimeout(() => process.exit(0), 500);
