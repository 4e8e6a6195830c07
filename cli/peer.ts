/** `peertv peer`: a headless Node viewer, or a relay super-peer that only forwards. */
import { isChannelId, isRenditionName, NAT_TYPES, type NatType } from '../protocol/index.ts';
import type { LinkRoute } from '../peer/index.ts';
import { startNodePeer, type NodePeer } from '../peer/node/index.ts';
import { discoverNat } from '../stun/index.ts';
import { CliError, intFlag, ipPortFlag, parseFlags, UsageError, urlFlag } from './args.ts';
import { natLine } from './nat.ts';

export const PEER_HELP = `Usage: peertv peer --tracker URL --channel ID [options]

Joins a channel's swarm. As a viewer it plays with the headless playback model and prints a status
line every few seconds; as a relay it only fetches and forwards (a well-connected helper).

Options:
  --tracker URL          the tracker (e.g. http://127.0.0.1:8080)
  --channel ID           the channel to join
  --rendition R          a rendition name, or auto (default: auto, by measured throughput)
  --upload-kbps N        upload cap in kbit/s, 0 = no cap (default: 0)
  --mode viewer|relay    (default: viewer)
  --loopback-only        offer only 127.0.0.1 WebRTC candidates (tests and demos on one machine)
  --stun IP[:PORT]       discover this host's NAT type (RFC 5780) against this STUN server before
                         joining, and report it to the tracker
  --nat-type TYPE        declare the NAT type instead (${NAT_TYPES.join(', ')})
  --status-interval S    seconds between status lines, 0 = none (default: 5)
  -h, --help             show this help
`;

const FLAGS = {
  tracker: { type: 'string' },
  channel: { type: 'string' },
  rendition: { type: 'string' },
  'upload-kbps': { type: 'string' },
  mode: { type: 'string' },
  'loopback-only': { type: 'boolean' },
  'status-interval': { type: 'string' },
  stun: { type: 'string' },
  'nat-type': { type: 'string' },
} as const;

export function peerOptionsFromArgv(argv: string[]) {
  const { values: v } = parseFlags(argv, FLAGS);
  if (v.help) return 'help' as const;
  const trackerUrl = urlFlag('tracker', v.tracker);
  if (!trackerUrl) throw new UsageError('--tracker is required');
  if (!isChannelId(v.channel)) throw new UsageError('--channel is required: [a-z0-9][a-z0-9_-]{0,63}');
  const rendition = v.rendition ?? 'auto';
  if (rendition !== 'auto' && !isRenditionName(rendition))
    throw new UsageError('--rendition must be a rendition name or auto');
  const mode = v.mode ?? 'viewer';
  if (mode !== 'viewer' && mode !== 'relay') throw new UsageError('--mode must be viewer or relay');
  const uploadKbps = intFlag('upload-kbps', v['upload-kbps'], 0, 0, 10_000_000);
  const stun = ipPortFlag('stun', v.stun, 3478);
  const natType = v['nat-type'];
  if (natType !== undefined && !(NAT_TYPES as readonly string[]).includes(natType))
    throw new UsageError(`--nat-type must be one of ${NAT_TYPES.join(', ')}`);
  if (natType !== undefined && stun) throw new UsageError('give --stun or --nat-type, not both');
  return {
    trackerUrl,
    stun,
    loopbackOnly: v['loopback-only'] ?? false,
    statusIntervalS: intFlag('status-interval', v['status-interval'], 5, 0, 3600),
    engine: {
      channel: v.channel,
      rendition,
      mode: mode as 'viewer' | 'relay',
      kind: 'node' as const,
      uploadCapKbps: uploadKbps,
      ...(natType !== undefined && { natType: natType as NatType }),
      ...(uploadKbps > 0 && { declaredUploadKbps: uploadKbps }),
    },
  };
}

const mbps = (kbps: number) =>
  kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(kbps)} kbit/s`;

export function statusLine(peer: NodePeer): string {
  const s = peer.engine.stats();
  const total = s.httpBytes + s.p2pBytes;
  const share = total > 0 ? `${Math.round((s.p2pBytes / total) * 100)}%` : '-';
  const p = peer.player;
  const parts = [
    `${peer.engine.opts.mode} ${s.rendition}${s.firstTier ? ' (first tier)' : ''}`,
    ...(p
      ? [
          `${p.state}`,
          `buffer ${p.bufferS.toFixed(1)}s`,
          `latency ${p.latencyS?.toFixed(1) ?? '-'}s`,
          `stalls ${p.stalls}`,
        ]
      : []),
    `peers ${s.peers}`,
    `from peers ${share}`,
    `down ${mbps(s.downloadKbps)}`,
    `up ${mbps(s.uploadKbps)}`,
  ];
  return parts.join('  ');
}

/** How a link connected, for people: `direct (srflx ↔ srflx, udp)` or `relayed (relay ↔ srflx, udp)`. */
export function routeText(route: LinkRoute): string {
  return `${route.relayed ? 'relayed' : 'direct'} (${route.local} ↔ ${route.remote}${route.protocol ? `, ${route.protocol}` : ''})`;
}

export async function runPeerCli(argv: string[]): Promise<void> {
  const cfg = peerOptionsFromArgv(argv);
  if (cfg === 'help') {
    process.stdout.write(PEER_HELP);
    return;
  }
  let engine = cfg.engine;
  if (cfg.stun) {
    const nat = await discoverNat({ server: cfg.stun });
    console.log(natLine(nat));
    engine = { ...engine, natType: nat.natType };
  }
  let peer: NodePeer;
  try {
    peer = await startNodePeer({
      trackerUrl: cfg.trackerUrl,
      engine,
      loopbackOnly: cfg.loopbackOnly,
    });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new CliError(`${typeof code === 'string' ? `${code}: ` : ''}${(err as Error).message}`);
  }
  peer.engine.on('error', ({ code, message }) => console.error(`${code}: ${message}`));
  peer.engine.on('segment-rejected', ({ mediaSequence, reason, from }) =>
    console.error(`segment ${mediaSequence} rejected (${reason})${from ? ` from ${from}` : ''}`),
  );
  // Neighbours dropped for a fault (bad data, protocol violation, over budget, unresponsive).
  peer.engine.on('peer-closed', ({ id, reason, code }) => {
    if (code && code !== 'peer-timeout') console.error(`peer ${id} dropped (${code}): ${reason}`);
  });
  peer.engine.on('peer-route', ({ id, route, connectMs, first }) =>
    console.log(
      first
        ? `peer ${id} connected in ${connectMs} ms: ${routeText(route)}`
        : `peer ${id} now ${routeText(route)}`,
    ),
  );
  peer.player?.on('playing', ({ startupMs, mediaSequence }) =>
    console.log(`playing from segment ${mediaSequence} after ${(startupMs / 1000).toFixed(2)} s`),
  );
  console.log(`joined ${cfg.engine.channel} as ${peer.engine.peerId || '(no tracker)'}`);
  const timer =
    cfg.statusIntervalS > 0
      ? setInterval(() => console.log(statusLine(peer)), cfg.statusIntervalS * 1000)
      : undefined;
  await new Promise<void>((resolve) => {
    let signals = 0;
    const stop = () => {
      if (++signals > 1) process.exit(130);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    peer.player?.on('ended', () => resolve());
  });
  clearInterval(timer);
  peer.destroy();
  // wrtc keeps native handles a moment after close.
  setTimeout(() => process.exit(process.exitCode ?? 0), 500).unref();
}
