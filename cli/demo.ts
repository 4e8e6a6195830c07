/** `peertv demo`: everything on this machine with one command (what `npm start` runs). */
import path from 'node:path';
import { startNodePeer, type NodePeer } from '../peer/node/index.ts';
import { StunServer } from '../stun/index.ts';
import { parseFlags, intFlag } from './args.ts';
import { runSourceCli } from './source.ts';
import { startTracker } from './tracker.ts';

export const DEMO_HELP = `Usage: peertv demo [options]

Runs a STUN server on 127.0.0.1:3478, the tracker on http://127.0.0.1:8080 (the player at /, dashboard
at /dashboard), a test-pattern channel "demo"
with a light two-rendition ladder (480p, 240p) whose origin is http://127.0.0.1:8081, registered with
the tracker, and one relay super-peer (WebRTC on 127.0.0.1 only). Ctrl-C ends the broadcast (the
recording stays) and stops everything.

Options:
  --port N          tracker port (default: 8080); the origin takes the next one
  --data-dir DIR    data directory (default: ./data)
  -h, --help        show this help
`;

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { port: { type: 'string' }, 'data-dir': { type: 'string' } });
  if (values.help) {
    process.stdout.write(DEMO_HELP);
    return;
  }
  const port = intFlag('port', values.port, 8080, 1, 65534);
  // STUN on 127.0.0.1:3478 (UDP and TCP); the tracker hands it to peers as their ICE server. Its RFC 5780
  // alternate (127.0.0.2:3479) lets browsers learn their NAT type (the tracker's natProbe); without it
  // when that cannot be bound.
  let stun = new StunServer({ host: '127.0.0.1', port: 3478, alternate: { host: '127.0.0.2', port: 3479 } });
  const stunPorts = await stun
    .listen()
    .catch(async () => {
      await stun.destroy();
      stun = new StunServer({ host: '127.0.0.1', port: 3478 });
      return stun.listen();
    })
    .catch((err: Error) => {
      console.error(`stun: not started (${err.message}); peers use host candidates only`);
      return undefined;
    });
  if (stunPorts)
    console.log(
      `stun:      udp/tcp 127.0.0.1:${stunPorts.udp ?? stunPorts.tcp}` +
        (stunPorts.alternate ? `, RFC 5780 alternate udp 127.0.0.2:${stunPorts.alternate}` : ''),
    );
  const tracker = await startTracker('127.0.0.1', port, {
    // Which key owns the demo channel survives restarts (DIR/tracker/pins.json).
    dataDir: path.resolve(values['data-dir'] ?? 'data'),
    iceServers: stunPorts ? [{ urls: `stun:127.0.0.1:${stunPorts.udp ?? stunPorts.tcp}` }] : [],
    ...(stunPorts?.udp &&
      stunPorts.alternate && {
        natProbe: [`stun:127.0.0.1:${stunPorts.udp}`, `stun:127.0.0.2:${stunPorts.alternate}`],
      }),
  });
  console.log(`tracker:   ${tracker.url}   dashboard: ${tracker.url}/dashboard`);
  let relay: NodePeer | undefined;
  // The relay joins once the channel is on air (the source registers it a moment after starting).
  const relayTimer = setInterval(() => {
    void tracker.channelInfo('demo').then(async (info) => {
      if (!info || info.status !== 'live' || relay) return;
      clearInterval(relayTimer);
      try {
        relay = await startNodePeer({
          trackerUrl: tracker.url,
          loopbackOnly: true,
          engine: { channel: 'demo', mode: 'relay', kind: 'node', rendition: '480p' },
        });
        console.log(`relay peer ${relay.engine.peerId} joined demo`);
      } catch (err) {
        console.error(`relay peer: ${(err as Error).message}`);
      }
    });
  }, 1000);
  try {
    await runSourceCli(
      [
        '--channel',
        'demo',
        '--title',
        'PeerTV demo: test pattern',
        '--ladder',
        '480p:854x480:1200:96,240p:426x240:400:64',
        '--port',
        String(port + 1),
        '--data-dir',
        values['data-dir'] ?? 'data',
        '--tracker',
        tracker.url,
      ],
      {
        // The relay is a viewer too: once the broadcast ended it has nothing more to relay, and the
        // origin should not wait for it to go quiet.
        onStarted: (running) =>
          running.channel.on('broadcast-ended', () => {
            clearInterval(relayTimer);
            relay?.destroy();
            relay = undefined;
          }),
      },
    );
  } finally {
    clearInterval(relayTimer);
    relay?.destroy();
    await tracker.destroy();
    await stun.destroy();
  }
}
