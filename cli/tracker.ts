/** `peertv tracker`: channel directory, peer sessions, signaling relay, Chandelier, stats and dashboard. */
import path from 'node:path';
import { buildPlayer } from '../player/build/index.ts';
import { ConfigError } from '../source/index.ts';
import {
  DEFAULT_TRACKER,
  isPolicyName,
  MemoryTrackerStore,
  POLICY_NAMES,
  pinFilePath,
  Tracker,
  type TrackerOptions,
} from '../tracker/index.ts';
import { isChannelId, type IceServer } from '../protocol/index.ts';
import { hostFlag, intFlag, parseFlags, UsageError } from './args.ts';

export const TRACKER_HELP = `Usage: peertv tracker [options]

Runs the tracker: channel directory (REST /api/channels), peer sessions and signaling relay
(socket.io), overlay policy, stats, Prometheus metrics (/metrics) and the dashboard (/dashboard).

Options:
  --host HOST                  listen address (default: 127.0.0.1)
  --port N                     listen port (default: 8080, 0 = any free port)
  --ice-server URL             STUN/TURN URL handed to peers, repeatable (e.g. stun:127.0.0.1:3478)
  --nat-probe URL,URL          our STUN server's primary and alternate address (peertv stun --alternate),
                               e.g. stun:203.0.113.10:3478,stun:203.0.113.11:3479: browsers gather
                               server-reflexive candidates against both and report their NAT type
  --cors-origin ORIGIN         allowed browser origin, repeatable (default: any)
  --turn-url URL               TURN relay handed to peers with time-limited credentials, repeatable
                               (e.g. turn:127.0.0.1:3479?transport=udp); needs --turn-secret
  --turn-secret S              coturn's static-auth-secret (default: $PEERTV_TURN_SECRET)
  --turn-ttl S                 lifetime of TURN credentials in seconds (default: 3600)
  --max-peers N                peers held at most (default: ${DEFAULT_TRACKER.maxPeers})
  --max-connections-per-ip N   concurrent connections per address, 0 = unlimited (default: ${DEFAULT_TRACKER.maxConnectionsPerIp})
  --neighbours N               neighbours recommended per peer (default: ${DEFAULT_TRACKER.targetNeighbours})
  --policy NAME                overlay policy: random (the baseline) or chandelier (plans who feeds
                               whom from measured upload and NAT type) (default: ${DEFAULT_TRACKER.policy})
  --report-interval S          seconds between peer reports (default: ${DEFAULT_TRACKER.reportIntervalMs / 1000})
  --data-dir DIR               durable state: which key owns which channel, in DIR/tracker/pins.json
                               (default: ./data)
  --release-channel ID         forget which key owns channel ID before starting, so that the next
                               signed registration claims it (moving a channel to a new key);
                               repeatable
  -h, --help                   show this help
`;

const FLAGS = {
  host: { type: 'string' },
  port: { type: 'string' },
  'ice-server': { type: 'string', multiple: true },
  'nat-probe': { type: 'string' },
  'cors-origin': { type: 'string', multiple: true },
  'turn-url': { type: 'string', multiple: true },
  'turn-secret': { type: 'string' },
  'turn-ttl': { type: 'string' },
  'max-peers': { type: 'string' },
  'max-connections-per-ip': { type: 'string' },
  neighbours: { type: 'string' },
  policy: { type: 'string' },
  'report-interval': { type: 'string' },
  'data-dir': { type: 'string' },
  'release-channel': { type: 'string', multiple: true },
} as const;

export function iceServerFlag(url: string): IceServer {
  if (!/^(stun|stuns|turn|turns):[A-Za-z0-9.[\]:-]+(\?transport=(udp|tcp))?$/.test(url))
    throw new UsageError(`--ice-server must look like stun:HOST[:PORT] or turn:HOST[:PORT] (got "${url}")`);
  return { urls: url };
}

export function trackerOptionsFromArgv(
  argv: string[],
): { host: string; port: number; options: Partial<TrackerOptions>; release: string[] } | 'help' {
  const { values: v } = parseFlags(argv, FLAGS);
  if (v.help) return 'help';
  const cors = (v['cors-origin'] ?? []).flatMap((o) => o.split(','));
  for (const o of cors)
    if (o !== '*' && !/^https?:\/\/[A-Za-z0-9.-]+(:\d+)?$/.test(o))
      throw new UsageError(`--cors-origin must be * or an origin like https://example.org (got "${o}")`);
  const turnUrls = (v['turn-url'] ?? []).map((u) => {
    if (!/^turns?:/.test(u)) throw new UsageError(`--turn-url must start with turn: or turns: (got "${u}")`);
    return iceServerFlag(u).urls as string;
  });
  const turnSecret = v['turn-secret'] ?? process.env.PEERTV_TURN_SECRET;
  if (turnUrls.length > 0 && (turnSecret === undefined || turnSecret.length < 16))
    throw new UsageError('--turn-url needs --turn-secret (or $PEERTV_TURN_SECRET) of at least 16 characters');
  const turnTtl = intFlag('turn-ttl', v['turn-ttl'], 3600, 60, 86_400);
  const reportS = intFlag(
    'report-interval',
    v['report-interval'],
    DEFAULT_TRACKER.reportIntervalMs / 1000,
    1,
    60,
  );
  const neighbours = intFlag('neighbours', v.neighbours, DEFAULT_TRACKER.targetNeighbours, 1, 32);
  const policy = v.policy ?? DEFAULT_TRACKER.policy;
  if (!isPolicyName(policy))
    throw new UsageError(`--policy must be one of ${POLICY_NAMES.join(', ')} (got "${policy}")`);
  const natProbe = v['nat-probe']?.split(',') ?? [];
  if (
    v['nat-probe'] !== undefined &&
    (natProbe.length !== 2 ||
      !natProbe.every((u) => /^stun:(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/.test(u)) ||
      natProbe[0] === natProbe[1])
  )
    throw new UsageError(
      `--nat-probe must be two stun:IP:PORT URLs of one STUN server, primary then alternate (got "${v['nat-probe']}")`,
    );
  const release = v['release-channel'] ?? [];
  for (const id of release)
    if (!isChannelId(id)) throw new UsageError(`--release-channel: "${id}" is not a channel id`);
  return {
    release,
    host: hostFlag('host', v.host, '127.0.0.1'),
    port: intFlag('port', v.port, 8080, 0, 65535),
    options: {
      iceServers: (v['ice-server'] ?? []).map(iceServerFlag),
      ...(natProbe.length === 2 && { natProbe }),
      ...(turnUrls.length > 0 && { turn: { urls: turnUrls, secret: turnSecret!, ttlS: turnTtl } }),
      ...(cors.length > 0 && { corsOrigins: cors }),
      maxPeers: intFlag('max-peers', v['max-peers'], DEFAULT_TRACKER.maxPeers, 1, 1_000_000),
      maxConnectionsPerIp: intFlag(
        'max-connections-per-ip',
        v['max-connections-per-ip'],
        DEFAULT_TRACKER.maxConnectionsPerIp,
        0,
        1_000_000,
      ),
      targetNeighbours: neighbours,
      policy,
      maxNeighbours: Math.max(DEFAULT_TRACKER.maxNeighbours, neighbours * 2),
      reportIntervalMs: reportS * 1000,
      peerTimeoutMs: reportS * 4000,
      dataDir: path.resolve(v['data-dir'] ?? 'data'),
    },
  };
}

/** The built web player (`npm start`/`npm test` build it; see player/build). */
export const PLAYER_DIST = path.resolve(import.meta.dirname, '../player/dist');

export async function startTracker(
  host: string,
  port: number,
  options: Partial<TrackerOptions>,
): Promise<Tracker> {
  await buildPlayer();
  const tracker = new Tracker({ playerDir: PLAYER_DIST, ...options });
  try {
    await tracker.listen(port, host);
  } catch (err) {
    await tracker.destroy();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new ConfigError(`tracker port ${port} is in use`);
    throw err;
  }
  return tracker;
}

export async function runTrackerCli(argv: string[]): Promise<void> {
  const cfg = trackerOptionsFromArgv(argv);
  if (cfg === 'help') {
    process.stdout.write(TRACKER_HELP);
    return;
  }
  // Releases happen before the tracker listens: no registration can slip in between.
  if (cfg.release.length > 0) {
    const pins = new MemoryTrackerStore({ pinFile: pinFilePath(cfg.options.dataDir!) });
    for (const id of cfg.release) {
      const had = (await pins.getPin(id)) !== undefined;
      await pins.deletePin(id);
      console.log(
        had
          ? `channel ${id} released: the next signed registration claims it`
          : `channel ${id} was not pinned`,
      );
    }
  }
  const tracker = await startTracker(cfg.host, cfg.port, cfg.options);
  // Handlers first, then the ready line: whoever waits for that line may signal at once.
  const stopped = new Promise<void>((resolve) => {
    let signals = 0;
    const stop = () => {
      if (++signals > 1) process.exit(130);
      void tracker.destroy().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  console.log(
    `tracker: ${tracker.url}  (dashboard ${tracker.url}/dashboard, metrics ${tracker.url}/metrics, policy ${tracker.policy.name})`,
  );
  await stopped;
}
