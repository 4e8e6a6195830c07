/**
 * `npx tsx test/bench/rtmp-flood.bench.ts [--connections 40] [--attack-s 15] [--after-s 30] [--root DIR]`
 *
 * Memory of the RTMP ingest under the pre-authentication partial-message flood: N attacker connections
 * (all from 127.0.0.1, no stream key) complete the handshake, set no chunk size (128 bytes) and then
 * send the beginnings of large messages on several chunk streams, never finishing any; a connection the
 * server closes is reopened at once. The server runs alone in a child process (`--root` picks the
 * checkout whose `source/rtmp/server.ts` it runs, to compare versions); its RSS is sampled from /proc.
 * Prints the server's RSS at rest, the peak during the attack, and RSS `--after-s` seconds after the
 * attackers left. `--message-bytes` sets the length the messages announce (to stay under a server's cap).
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    root: { type: 'string', default: path.resolve(import.meta.dirname, '../..') },
    connections: { type: 'string', default: '40' },
    'attack-s': { type: 'string', default: '15' },
    'after-s': { type: 'string', default: '30' },
    'streams-per-connection': { type: 'string', default: '8' },
    'mib-per-connection': { type: 'string', default: '12' },
    'message-bytes': { type: 'string', default: String(0xffffff) },
  },
});

if (flags.serve) {
  // The server alone in this process: its RSS is the figure.
  const mod = (await import(path.join(flags.root, 'source/rtmp/server.ts'))) as {
    RtmpIngestServer: new (o: { resolve: (k: string) => undefined }) => {
      listen(port: number): Promise<number>;
      on(e: string, f: (...a: unknown[]) => void): void;
    };
  };
  const server = new mod.RtmpIngestServer({ resolve: () => undefined });
  let refused = 0;
  server.on('refused', () => refused++);
  const port = await server.listen(0);
  process.stdout.write(`${port}\n`);
  process.on('message', () => process.send?.({ refused }));
} else {
  await main();
}

function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function main(): Promise<void> {
  const connections = Number(flags.connections);
  const attackMs = Number(flags['attack-s']) * 1000;
  const afterMs = Number(flags['after-s']) * 1000;
  const streams = Number(flags['streams-per-connection']);
  const bytesPerConnection = Number(flags['mib-per-connection']) * 1024 * 1024;
  const messageBytes = Number(flags['message-bytes']);
  if (!(messageBytes > 128 && messageBytes <= 0xffffff)) throw new Error('--message-bytes: 129 to 16777215');

  const child = spawn(
    process.execPath,
    ['--import', 'tsx', import.meta.filename, '--serve', '--root', flags.root],
    { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.on('exit', () => reject(new Error('server exited')));
  });
  const pid = child.pid!;
  await sleep(1000);
  const restMiB = rssMiB(pid);
  let peakMiB = restMiB;
  const sampler = setInterval(() => (peakMiB = Math.max(peakMiB, rssMiB(pid))), 200);

  let stop = false;
  let opened = 0;
  let sentBytes = 0;
  const sockets = new Set<net.Socket>();
  const attacker = async (): Promise<void> => {
    while (!stop) {
      opened++;
      await oneConnection();
      if (!stop) await sleep(20);
    }
  };
  const oneConnection = () =>
    new Promise<void>((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      sockets.add(sock);
      let got = 0;
      let started = false;
      sock.on('error', () => {});
      sock.on('close', () => {
        sockets.delete(sock);
        resolve();
      });
      sock.on('data', async (d) => {
        got += d.length;
        if (got < 1 + 2 * 1536 || started) return;
        started = true;
        sock.write(crypto.randomBytes(1536)); // C2
        // One fmt-0 header per chunk stream announcing a large audio message (16 MiB - 1 by default),
        // then 128-byte continuation chunks (fmt 3) round-robin over the streams, never finishing one.
        const body = crypto.randomBytes(128);
        for (let s = 0; s < streams && !sock.destroyed; s++) {
          const h = Buffer.from([3 + s, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0]);
          h.writeUIntBE(messageBytes, 4, 3);
          sock.write(Buffer.concat([h, body]));
        }
        let sent = streams * 128;
        const most = Math.min(bytesPerConnection, streams * (messageBytes - 1));
        while (sent + 256 * 128 <= most && !sock.destroyed && !stop) {
          const batch: Buffer[] = [];
          for (let i = 0; i < 256; i++) batch.push(Buffer.from([0xc0 | (3 + (i % streams))]), body);
          sent += 256 * 128;
          sentBytes += 256 * 128;
          if (!sock.write(Buffer.concat(batch)))
            await new Promise<void>((r) => {
              sock.once('drain', r);
              sock.once('close', r);
            });
        }
        // Then hold the connection open, as a trickling attacker does.
      });
      sock.write(Buffer.concat([Buffer.from([3]), crypto.randomBytes(1536)]));
    });

  const attackers = Array.from({ length: connections }, () => attacker());
  await sleep(attackMs);
  const heldMiB = rssMiB(pid);
  stop = true;
  for (const s of sockets) s.destroy();
  await Promise.all(attackers);
  await sleep(afterMs);
  clearInterval(sampler);
  const afterMiB = rssMiB(pid);
  child.send('stats');
  const stats = await new Promise<{ refused: number }>((resolve) =>
    child.once('message', (m) => resolve(m as never)),
  );
  child.kill('SIGTERM');
  const f = (x: number) => `${x.toFixed(0)} MiB`;
  console.log(
    `root ${flags.root}: ${connections} attackers, ${opened} connections opened, ${(sentBytes / 1024 / 1024).toFixed(0)} MiB of partial messages written, ${stats.refused} refused by the server`,
  );
  console.log(
    `server RSS: at rest ${f(restMiB)}, peak during attack ${f(peakMiB)}, at end of attack ${f(heldMiB)}, ${afterMs / 1000} s after ${f(afterMiB)}`,
  );
  // The figures as one JSON line, for bench:hardening.
  console.log(
    JSON.stringify({
      connections,
      opened,
      sentMiB: sentBytes / 1024 / 1024,
      refused: stats.refused,
      rssMiB: { rest: restMiB, peak: peakMiB, endOfAttack: heldMiB, after: afterMiB },
      afterS: afterMs / 1000,
    }),
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
