/**
 * Teardown of the source room: `destroy()` of every component is idempotent (a second call, or two at
 * once, share one promise and never throw) and cascades to what the component owns (sessions, sockets,
 * connections, the encoder, the store's lock).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { ChannelStore, Origin, RtmpIngestServer } from '../../source/index.ts';
import { segments, tempDir, tinyChannel } from '../helpers/source.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A client socket and a promise of its close (whoever closes it). */
async function connect(port: number): Promise<{ sock: net.Socket; closed: Promise<void> }> {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  sock.resume();
  return { sock, closed };
}

/** Fails if `p` does not settle within `ms`. */
async function within<T>(what: string, p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

describe('destroy()', () => {
  test('RtmpIngestServer: twice and concurrently is one teardown; open sessions are closed; no listening after', async () => {
    const rtmp = new RtmpIngestServer({ resolve: () => undefined });
    const port = await rtmp.listen(0);
    // One connection mid-handshake, one that sent nothing: both are sessions of the server.
    const a = await connect(port);
    a.sock.write(Buffer.concat([Buffer.from([3]), crypto.randomBytes(1536)]));
    const b = await connect(port);
    const deadline = Date.now() + 10_000;
    while (rtmp.stats().connections < 2 && Date.now() < deadline) await sleep(10);
    assert.equal(rtmp.stats().connections, 2);
    assert.equal(rtmp.stats().pending, 2);

    const first = rtmp.destroy();
    const second = rtmp.destroy();
    assert.equal(first, second, 'concurrent calls share one promise');
    await within('destroy', first);
    assert.ok(rtmp.destroyed);
    await within('the sessions’ sockets closing', Promise.all([a.closed, b.closed]));
    assert.deepEqual(rtmp.stats(), { connections: 0, pending: 0, bufferedBytes: 0, pendingBufferedBytes: 0 });
    assert.equal(rtmp.destroy(), first, 'a later call returns the same promise');
    await rtmp.destroy();
    await assert.rejects(connect(port), 'the port is closed');
    await assert.rejects(rtmp.listen(0), /destroyed/);
    // Before listen: nothing to close, still idempotent.
    const idle = new RtmpIngestServer({ resolve: () => undefined });
    await Promise.all([idle.destroy(), idle.destroy()]);
  });

  test('Origin: twice and concurrently is one teardown; idle and fresh connections are closed', async () => {
    const origin = new Origin();
    await origin.listen(0);
    const port = Number(new URL(origin.publicUrl).port);
    // A keep-alive connection that was answered (idle) and one that never sent a request.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let kept: net.Socket | undefined;
    await new Promise<void>((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          kept = res.socket;
          res.resume();
          res.on('end', resolve);
        })
        .on('error', reject),
    );
    const keptClosed = new Promise<void>((r) => kept!.once('close', () => r()));
    const fresh = await connect(port);
    const deadline = Date.now() + 10_000;
    while (origin.connectionStats().open < 2 && Date.now() < deadline) await sleep(10);
    assert.equal(origin.connectionStats().open, 2);

    const first = origin.destroy();
    assert.equal(origin.destroy(), first, 'concurrent calls share one promise');
    await within('destroy', first);
    await within('the connections closing', Promise.all([keptClosed, fresh.closed]));
    assert.equal(origin.connectionStats().open, 0);
    await origin.destroy();
    await assert.rejects(origin.listen(0), /destroyed/);
    agent.destroy();
    const idle = new Origin();
    await Promise.all([idle.destroy(), idle.destroy()]);
  });

  test('ChannelStore: twice is safe; the directory lock is released', () => {
    const dir = tempDir();
    const store = new ChannelStore(dir, 'chan');
    store.destroy();
    store.destroy();
    assert.ok(!fs.existsSync(path.join(dir, 'channels', 'chan', 'source.lock')));
    new ChannelStore(dir, 'chan').destroy();
  });

  test('SourceChannel: concurrent calls are one teardown; the encoder is ended and the store released', async () => {
    const dataDir = tempDir();
    const channel = tinyChannel({ dataDir });
    await channel.start();
    await segments(channel, 1);
    const pid = channel.encoderPid;
    assert.ok(pid, 'the encoder runs');
    const first = channel.destroy();
    const second = channel.destroy();
    assert.equal(first, second, 'concurrent calls share one promise');
    await within('destroy', first, 30_000);
    assert.equal(channel.encoderPid, undefined);
    assert.throws(() => process.kill(pid, 0), 'the encoder process is gone');
    assert.equal(channel.status, 'ended', 'the broadcast was ended on the way');
    assert.equal(channel.listenerCount('segment'), 0);
    await channel.destroy();
    new ChannelStore(dataDir, channel.settings.id).destroy(); // the lock was released
    await assert.rejects(channel.start(), /stopped/);
  });
});
