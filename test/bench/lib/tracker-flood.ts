/**
 * The attackers of `npm run bench:hardening`'s tracker floods, in a process of their own so the honest
 * client's measurements are not slowed down by the attack's own event loop.
 *
 * Usage: node --import tsx test/bench/lib/tracker-flood.ts KIND TRACKER_URL SECONDS
 * KIND: `unknown-events` (sockets sending 1 KB events the tracker does not know, reconnecting when cut
 * off), `registrations` (100 channels, each a new key, from 100 loopback addresses, with a directory
 * watcher counting what it is pushed), `rendition-flips` (100 peers flipping renditions in every
 * report, within the per-socket event rate). Prints one JSON line with what the attack achieved.
 */
import http from 'node:http';
import { io, type Socket } from 'socket.io-client';
import { TRACKER_PROTOCOL_VERSION, type ChannelRegistration } from '../../../protocol/index.ts';
import { ChannelSigner } from '../../../source/index.ts';
import { signedRegistration } from '../../helpers/registration.ts';
import { emptyReport } from '../../helpers/tracker-clients.ts';

const [kind, url, secondsText] = process.argv.slice(2);
const seconds = Number(secondsText);
if (!kind || !url || !(seconds > 0)) {
  process.stderr.write('usage: tracker-flood.ts KIND TRACKER_URL SECONDS\n');
  process.exit(2);
}
const until = Date.now() + seconds * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sockets: Socket[] = [];
const open = (opts: { localAddress?: string } = {}): Socket => {
  const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, ...opts });
  sockets.push(s);
  return s;
};
const connected = (s: Socket) =>
  new Promise<boolean>((resolve) => {
    s.once('connect', () => resolve(true));
    s.once('connect_error', () => resolve(false));
  });

/** A registration sent over REST from a given loopback address (many attackers, many addresses). */
function putFrom(localAddress: string, reg: ChannelRegistration): Promise<number> {
  const body = JSON.stringify(reg);
  const u = new URL(`/api/channels/${reg.channel}`, url);
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'PUT',
        localAddress,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

async function unknownEvents(): Promise<object> {
  const junk = 'x'.repeat(1024);
  let sent = 0;
  let cutOff = 0;
  let refusedConnects = 0;
  const worker = async () => {
    while (Date.now() < until) {
      const s = open();
      if (!(await connected(s))) {
        refusedConnects++;
        await sleep(200);
        continue;
      }
      while (s.connected && Date.now() < until) {
        for (let i = 0; i < 200 && s.connected; i++) {
          s.emit(`admin:${i % 50}`, junk);
          sent++;
        }
        await sleep(1);
      }
      if (!s.connected) cutOff++;
      s.disconnect();
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return { sent, cutOff, refusedConnects };
}

async function registrations(): Promise<object> {
  const watcher = open();
  await connected(watcher);
  let pushedBytes = 0;
  let pushes = 0;
  let statsBytes = 0;
  watcher.onAny((event: string, data: unknown) => {
    if (event === 'directory-update' || event === 'directory') {
      pushes++;
      pushedBytes += JSON.stringify(data).length;
    } else if (event === 'stats') statsBytes += JSON.stringify(data).length;
  });
  await watcher.timeout(5000).emitWithAck('watch', {});
  const statuses: Record<string, number> = {};
  let round = 0;
  while (Date.now() < until) {
    // 100 new channels (new keys) from 100 addresses, then their owners update them all again.
    const batch = await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const id = `flood-${round}-${i}`;
        return putFrom(`127.0.${1 + (i >> 8)}.${2 + (i & 0xff)}`, signedRegistration(id, {}, keyFor(id)));
      }),
    );
    for (const s of batch) statuses[s] = (statuses[s] ?? 0) + 1;
    round++;
    await sleep(500);
  }
  await sleep(500);
  return { rounds: round, statuses, pushes, pushedBytes, statsBytes };
}
const keys = new Map<string, ChannelSigner>();
const keyFor = (id: string) => {
  let k = keys.get(id);
  if (!k) keys.set(id, (k = ChannelSigner.generate()));
  return k;
};

async function renditionFlips(channel = 'bench'): Promise<object> {
  const peers: Socket[] = [];
  for (let i = 0; i < 100; i++) {
    const s = open();
    if (!(await connected(s))) continue;
    const ack = (await s.timeout(10_000).emitWithAck('join', {
      protocolVersion: TRACKER_PROTOCOL_VERSION,
      channel,
      kind: 'node',
      mode: 'viewer',
      rendition: i % 2 ? '180p' : '90p',
      uploadKbps: 1000,
      natType: 'unknown',
    })) as { ok: boolean };
    if (ack.ok) peers.push(s);
  }
  let flips = 0;
  let refused = 0;
  let neighbourPushes = 0;
  for (const s of peers) s.on('neighbours', () => neighbourPushes++);
  const report = (rendition: string) => emptyReport({ rendition });

  let tick = 0;
  while (Date.now() < until) {
    tick++;
    for (const [i, s] of peers.entries()) {
      // 10 reports a second each: half the per-socket event rate.
      s.emit('report', report((i + tick) % 2 ? '180p' : '90p'), (ack: { ok: boolean }) => {
        if (ack?.ok) flips++;
        else refused++;
      });
    }
    await sleep(100);
  }
  return { peers: peers.length, reports: flips, refused, neighbourPushes };
}

const result =
  kind === 'unknown-events'
    ? await unknownEvents()
    : kind === 'registrations'
      ? await registrations()
      : kind === 'rendition-flips'
        ? await renditionFlips()
        : (() => {
            throw new Error(`unknown flood ${kind}`);
          })();
for (const s of sockets) s.disconnect();
process.stdout.write(`${JSON.stringify({ kind, ...result })}\n`);
process.exit(0);
