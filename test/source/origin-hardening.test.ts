/**
 * The origin's resilience: publication never depends on the origin accepting connections (descriptor
 * exhaustion), connection caps in total and per address with idle connections closed first, timeouts
 * for silent and slow clients, keep-alive that clients do not race, pipelining within budget, and the
 * HTTP fetcher's single retry of a GET whose reused connection was reset.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { createHttpFetcher } from '../../peer/index.ts';
import {
  ConfigError,
  descriptorLimit,
  Origin,
  type ConnectionStats,
  type SourceChannel,
} from '../../source/index.ts';
import { segments, tempDir, tinyChannel } from '../helpers/source.ts';
import { SourceProcess, tinySourceArgs } from '../helpers/source-process.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const decoder = new TextDecoder();

/** Opens a TCP connection from `localAddress` (any 127.x.y.z works on Linux) and resolves once connected. */
function connect(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    s.once('connect', () => resolve(s));
    s.resume(); // read, so that a close by the origin is seen
    s.once('error', reject);
  });
}

/** Whether the other side closed `s` (or it errored). */
const closedByPeer = (s: net.Socket): boolean => s.destroyed || s.readableEnded || s.closed;

/** One GET over a raw socket: resolves with the status line and the bytes received (until the body is complete). */
function rawGet(
  s: net.Socket,
  pathname: string,
  timeoutMs = 10_000,
): Promise<{ head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no complete answer to ${pathname}`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length - end - 4 >= length)
        done(undefined, { head, body: buf.subarray(end + 4, end + 4 + length) });
    };
    const onClose = () => done(new Error(`connection closed before the answer to ${pathname}`));
    const done = (err?: Error, v?: { head: string; body: Buffer }) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      if (err) reject(err);
      else resolve(v!);
    };
    s.on('data', onData);
    s.once('close', onClose);
    s.write(`GET ${pathname} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

async function stats(base: string): Promise<ConnectionStats> {
  const r = await createHttpFetcher().get(`${base}/stats`);
  return (JSON.parse(decoder.decode(r.bytes)) as { connections: ConnectionStats }).connections;
}

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

describe('descriptor exhaustion', () => {
  const dirs: string[] = [];
  const procs: SourceProcess[] = [];
  after(() => {
    for (const p of procs) p.kill();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  test(
    'idle connections far beyond the descriptor limit cost no segment, and the origin keeps serving',
    { skip: hasPrlimit ? false : 'prlimit (util-linux) is not installed' },
    async () => {
      // The attack scaled down: 4 200 idle connections at a limit of 4 096 for 30 s, here 600
      // from 50 addresses (reconnecting as soon as they are closed) at a limit of 400 for 20 s.
      const LIMIT = 400;
      const ATTACKERS = 600;
      const HOLD_MS = 20_000;
      const dir = tempDir('peertv-fd-attack-');
      dirs.push(dir);
      const sp = new SourceProcess(tinySourceArgs(dir, 'atk'), {
        prefix: ['prlimit', `--nofile=${LIMIT}:${LIMIT}`, '--'],
      });
      procs.push(sp);
      const base = await sp.channelUrl('atk');
      const origin = base.replace(/\/channels\/atk$/, '');
      const port = Number(new URL(base).port);
      const fetcher = createHttpFetcher();
      const get = async (url: string) => {
        try {
          return (await fetcher.get(url, { signal: AbortSignal.timeout(8000) })).status;
        } catch {
          return 0;
        }
      };
      // Wait until the broadcast is under way.
      const first = await (async () => {
        for (;;) {
          const r = await fetcher.get(`${base}/live/180p.m3u8`).catch(() => undefined);
          const text = r?.status === 200 ? decoder.decode(r.bytes) : '';
          const seq = /(\d+)\.ts\n/.exec(text)?.[1];
          if (seq !== undefined) return Number(seq);
          await sleep(300);
        }
      })();

      let attacking = true;
      const sockets = new Set<net.Socket>();
      const open = (i: number): void => {
        if (!attacking) return;
        const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 50)}` });
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          sockets.delete(s);
          setTimeout(() => open(i), 1000);
        });
      };
      for (let i = 0; i < ATTACKERS; i++) {
        open(i);
        if (i % 50 === 49) await sleep(20);
      }

      // A viewer meanwhile: the live playlist and its newest segment, every half second.
      let ok = 0;
      let failed = 0;
      const until = Date.now() + HOLD_MS;
      while (Date.now() < until) {
        const playlist = await fetcher
          .get(`${base}/live/180p.m3u8`, { signal: AbortSignal.timeout(8000) })
          .catch(() => undefined);
        if (playlist?.status === 200) {
          ok++;
          const uris = decoder
            .decode(playlist.bytes)
            .split('\n')
            .filter((l) => l.endsWith('.ts'));
          const status = await get(new URL(uris[uris.length - 1]!, `${base}/live/180p.m3u8`).href);
          if (status === 200) ok++;
          else failed++;
        } else failed++;
        await sleep(500);
      }
      const during = await stats(origin).catch(() => undefined);
      attacking = false;
      for (const s of sockets) s.destroy();

      await sleep(2000);
      sp.child.kill('SIGINT');
      assert.equal((await sp.exited).code, 0, sp.output);

      assert.doesNotMatch(sp.output, /publish-failed|EMFILE|encoder-crashed/);
      for (const r of ['180p', '90p']) {
        const lines = fs
          .readFileSync(path.join(dir, 'channels', 'atk', 'segments', r, 'index.ndjson'), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { kind?: string; mediaSequence: number });
        const gaps = lines.filter((l) => l.kind === 'gap').map((l) => l.mediaSequence);
        assert.deepEqual(gaps, [], `${r}: segments lost`);
        const seqs = lines.map((l) => l.mediaSequence);
        assert.deepEqual(
          seqs,
          seqs.map((_, i) => seqs[0]! + i),
          `${r}: sequence numbers are contiguous`,
        );
        assert.ok(seqs[seqs.length - 1]! - first >= 10, `${r}: publication went on during the attack`);
      }
      const cap = /^origin: at most (\d+) connections, (\d+) per address \(descriptor limit (\d+)\)$/m.exec(
        sp.output,
      );
      assert.ok(cap, sp.output);
      assert.equal(Number(cap[3]), LIMIT);
      const maxConnections = Number(cap[1]);
      assert.ok(maxConnections * 2 + 256 <= LIMIT, `cap ${maxConnections} leaves publication its reserve`);

      assert.ok(during, 'the origin answered /stats during the attack');
      assert.ok(during.evicted + during.refused > 0, `the cap was reached: ${JSON.stringify(during)}`);
      assert.ok(during.open <= maxConnections, `${during.open} open ≤ ${maxConnections}`);
      assert.ok(
        ok >= 20 && failed <= Math.max(2, (ok + failed) / 10),
        `viewer: ${ok} answered, ${failed} failed`,
      );
    },
  );

  test('the cap is derived from the descriptor limit; a limit that leaves no room is refused', async () => {
    const fds = descriptorLimit();
    assert.ok(fds, 'the descriptor limit is readable');
    const o = new Origin();
    await o.listen(0);
    try {
      const limits = o.limits!;
      assert.equal(limits.descriptorLimit, fds.soft);
      assert.equal(limits.maxConnections, Math.min(16_384, Math.floor((fds.soft - 256) / 2)));
      assert.equal(limits.maxConnectionsPerAddress, Math.floor(limits.maxConnections / 4));
    } finally {
      await o.destroy();
    }
    await assert.rejects(new Origin({ maxConnections: fds.soft }).listen(0), ConfigError);
    await assert.rejects(new Origin({ reservedFds: fds.soft }).listen(0), ConfigError);
    assert.throws(() => new Origin({ maxConnections: 10, maxConnectionsPerAddress: 20 }), ConfigError);
    assert.throws(() => new Origin({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 }), ConfigError);
  });

  test(
    '`peertv source` under a descriptor limit too low for its reserve says so in one line',
    { skip: hasPrlimit ? false : 'prlimit (util-linux) is not installed' },
    async () => {
      const dir = tempDir('peertv-fd-low-');
      dirs.push(dir);
      const sp = new SourceProcess(tinySourceArgs(dir, 'low'), {
        prefix: ['prlimit', '--nofile=200:200', '--'],
      });
      procs.push(sp);
      const exit = await sp.exited;
      assert.equal(exit.code, 2, sp.output);
      assert.match(
        sp.output.trim(),
        /^peertv source: the descriptor limit \(200\) leaves no room for origin connections/,
      );
      assert.equal(sp.output.trim().split('\n').length, 1, sp.output);
    },
  );
});

describe('origin connections and timeouts', () => {
  let channel: SourceChannel;
  let segmentPath: string;
  const origins: Origin[] = [];
  const sockets: net.Socket[] = [];

  const serve = async (
    opts: ConstructorParameters<typeof Origin>[0] = {},
  ): Promise<{ origin: Origin; port: number }> => {
    const origin = new Origin(opts);
    origin.addChannel(channel);
    await origin.listen(0);
    origins.push(origin);
    return { origin, port: Number(new URL(origin.publicUrl).port) };
  };
  const track = (s: net.Socket): net.Socket => {
    sockets.push(s);
    s.on('error', () => {});
    return s;
  };

  before(async () => {
    channel = tinyChannel({ id: 'conn' });
    const got = segments(channel, 2, '90p');
    await channel.start();
    const [a] = await got;
    segmentPath = `/channels/conn/segments/90p/${a!.mediaSequence}.ts`;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    for (const o of origins) await o.destroy();
    await channel.destroy();
  });

  test('one address holds at most its share; at the total cap the longest-idle connection makes room', async () => {
    const { origin, port } = await serve({ maxConnections: 24, maxConnectionsPerAddress: 6 });
    const flood = await Promise.all(Array.from({ length: 20 }, () => connect(port, '127.0.0.2').then(track)));
    await sleep(500);
    const open = flood.filter((s) => !closedByPeer(s));
    assert.equal(open.length, 6, 'one address keeps 6 connections');
    // Three more addresses fill the table with idle connections.
    for (const a of ['127.0.0.3', '127.0.0.4', '127.0.0.5'])
      for (let i = 0; i < 6; i++) track(await connect(port, a));
    await sleep(300);
    assert.equal(origin.connectionStats().open, 24);
    // A viewer from a fifth address is still served: the longest-idle connection was closed for it.
    const viewer = track(await connect(port, '127.0.0.6'));
    const r = await rawGet(viewer, '/channels/conn/channel.json');
    assert.match(r.head, /^HTTP\/1\.1 200/);
    assert.ok(closedByPeer(open[0]!), 'the longest-idle connection (the oldest of the flood) was closed');
    const s = origin.connectionStats();
    assert.ok(s.open <= 24 && s.evicted >= 15, JSON.stringify(s));
  });

  test('silent and slowloris clients are timed out; an idle keep-alive connection outlives the headers timeout', async () => {
    const { port } = await serve({
      headersTimeoutMs: 1000,
      requestTimeoutMs: 2000,
      idleTimeoutMs: 1500,
      keepAliveTimeoutMs: 4000,
    });
    const silent = track(await connect(port));
    const slow = track(await connect(port));
    let trickle = 0;
    const timer = setInterval(() => {
      if (!slow.destroyed) slow.write(trickle++ === 0 ? 'GET / HTTP/1.1\r\n' : `X-${trickle}: y\r\n`);
    }, 300);
    const kept = track(await connect(port));
    assert.match((await rawGet(kept, '/channels/conn/channel.json')).head, /^HTTP\/1\.1 200/);
    await sleep(2500); // idle longer than the headers timeout
    assert.match((await rawGet(kept, '/channels/conn/channel.json')).head, /^HTTP\/1\.1 200/, 'reused');
    const deadline = Date.now() + 10_000;
    while (!(closedByPeer(silent) && closedByPeer(slow)) && Date.now() < deadline) await sleep(100);
    clearInterval(timer);
    assert.ok(closedByPeer(silent), 'a connection that never sends a request is closed');
    assert.ok(closedByPeer(slow), 'a client that trickles its headers is closed');
  });

  test('keep-alive outlasts clients’ idle timeouts: a connection reused after 6 s (Node’s default 5 s) still answers', async () => {
    const { port } = await serve();
    const s = track(await connect(port));
    const first = await rawGet(s, '/channels/conn/channel.json');
    assert.match(first.head, /\r\nKeep-Alive: timeout=65\b/i);
    await sleep(6500);
    assert.ok(!closedByPeer(s), 'the origin kept the idle connection');
    assert.match((await rawGet(s, '/channels/conn/channel.json')).head, /^HTTP\/1\.1 200/);
  });

  test('pipelined requests are answered in order with one segment file open at a time; too many close the connection', async () => {
    const { origin, port } = await serve({ maxPipelinedRequests: 16 });
    const s = track(await connect(port));
    const expected = fs.statSync(
      channel.store.segmentPath('90p', Number(/(\d+)\.ts$/.exec(segmentPath)![1])),
    ).size;
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => (buf = Buffer.concat([buf, d])));
    s.write(`GET ${segmentPath} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(10));
    const deadline = Date.now() + 15_000;
    while ((buf.toString('latin1').match(/HTTP\/1\.1 200/g)?.length ?? 0) < 10 && Date.now() < deadline)
      await sleep(50);
    await sleep(200);
    assert.ok(buf.length > 10 * expected, 'ten whole segments arrived');
    assert.equal(buf.toString('latin1').match(/HTTP\/1\.1 200/g)?.length, 10);
    assert.equal(origin.connectionStats().openFilesPeak, 1);

    const greedy = track(await connect(port));
    greedy.write(`GET ${segmentPath} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(40));
    const until = Date.now() + 10_000;
    while (!closedByPeer(greedy) && Date.now() < until) await sleep(50);
    assert.ok(closedByPeer(greedy), 'a connection with 40 pipelined requests is closed');
    assert.ok(origin.connectionStats().pipelineOverflows >= 1);
    assert.equal(origin.connectionStats().openFilesPeak, 1);
  });
});

describe('the HTTP fetcher retries a GET whose connection was reset', () => {
  let server: http.Server;
  let url: string;
  let requests = 0;
  /** What the server does with request number n (1-based). */
  let behaviour: (n: number, req: http.IncomingMessage, res: http.ServerResponse) => void;

  before(async () => {
    server = http.createServer((req, res) => behaviour(++requests, req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/x`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const ok = (res: http.ServerResponse) => {
    res.setHeader('Content-Length', '5');
    res.end('hello');
  };

  test('a reset before any response: sent once more, and answered', async () => {
    requests = 0;
    behaviour = (n, req, res) => (n === 1 ? req.socket.resetAndDestroy() : ok(res));
    const r = await createHttpFetcher().get(url);
    assert.equal(r.status, 200);
    assert.equal(decoder.decode(r.bytes), 'hello');
    assert.equal(requests, 2);
  });

  test('only once: a second reset is the caller’s', async () => {
    requests = 0;
    behaviour = (_n, req) => req.socket.resetAndDestroy();
    await assert.rejects(createHttpFetcher().get(url));
    assert.equal(requests, 2);
  });

  test('never after bytes arrived, never when the caller aborted, never when disabled', async () => {
    requests = 0;
    behaviour = (_n, req, res) => {
      res.setHeader('Content-Length', '100000');
      res.write(Buffer.alloc(1000));
      setTimeout(() => req.socket.resetAndDestroy(), 100);
    };
    let progress = 0;
    await assert.rejects(createHttpFetcher().get(url, { onProgress: (n) => (progress += n) }));
    assert.equal(requests, 1);
    assert.ok(progress > 0);

    requests = 0;
    const ac = new AbortController();
    behaviour = (_n, req) => {
      ac.abort();
      req.socket.resetAndDestroy();
    };
    await assert.rejects(createHttpFetcher().get(url, { signal: ac.signal }));
    assert.equal(requests, 1);

    requests = 0;
    behaviour = (_n, req) => req.socket.resetAndDestroy();
    await assert.rejects(createHttpFetcher({ retryOnReset: false }).get(url));
    assert.equal(requests, 1);
  });
});
