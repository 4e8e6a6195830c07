/**
 * Inputs: RTMP ingest (an ffmpeg publisher stands in for OBS), media files, and bad input of every kind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ConfigError, RtmpIngestServer, streamKeyMatches, type SourceChannel } from '../../source/index.ts';
import { peertv } from '../helpers/process.ts';
import { ffmpegPublisher, liveOrigin, segments, tempDir, tinyChannel, waitFor } from '../helpers/source.ts';

const KEY = 'obs-stream-key-123';

const publish = ffmpegPublisher;

describe('RTMP ingest', () => {
  let channel: SourceChannel;
  let rtmp: RtmpIngestServer;
  let port: number;
  let closeOrigin: () => Promise<void>;

  before(async () => {
    channel = tinyChannel({ id: 'obs', input: { kind: 'rtmp', streamKey: KEY }, reconnectGraceMs: 1500 });
    const { origin } = await liveOrigin(channel);
    closeOrigin = () => origin.destroy();
    rtmp = new RtmpIngestServer({ resolve: (k) => (streamKeyMatches(k, KEY) ? channel : undefined) });
    port = await rtmp.listen(0);
  });

  after(async () => {
    await rtmp.destroy();
    await channel.destroy();
    await closeOrigin();
  });

  test('a wrong stream key is refused and nothing is published', async () => {
    const refused = waitFor(rtmp, 'refused', 20_000);
    let published = 0;
    const count = () => published++;
    channel.on('segment', count);
    const p = publish(`rtmp://127.0.0.1:${port}/live/not-the-key-000`, 4);
    const [info] = await refused;
    const { code, stderr } = await p.done;
    channel.off('segment', count);
    assert.equal(info.reason, 'wrong stream key');
    assert.notEqual(code, 0, 'the publisher sees the refusal');
    assert.match(stderr, /invalid stream key/);
    assert.equal(published, 0);
    assert.equal(channel.status, 'idle');
    assert.equal(channel.store.broadcasts().length, 0);
  });

  test('a wrong application name is refused', async () => {
    const refused = waitFor(rtmp, 'refused', 20_000);
    const p = publish(`rtmp://127.0.0.1:${port}/other/${KEY}`, 3);
    const [info] = await refused;
    await p.done;
    assert.match(info.reason, /unknown application/);
    assert.equal(channel.store.broadcasts().length, 0);
  });

  test('garbage on the RTMP port is dropped and the server keeps serving', async () => {
    const refused = waitFor(rtmp, 'refused', 20_000);
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => {});
    sock.write(Buffer.alloc(2000, 0x42)); // wrong version byte
    const [info] = await refused;
    assert.match(info.reason, /unsupported RTMP version/);
    sock.destroy();
  });

  test('random and hostile bytes after a handshake never crash the server (fuzz)', async () => {
    const handshake = (sock: net.Socket) =>
      new Promise<void>((resolve, reject) => {
        let got = 0;
        sock.on('data', (d) => {
          got += d.length;
          if (got >= 3073) resolve();
        });
        sock.on('error', reject);
        sock.write(Buffer.concat([Buffer.from([3]), crypto.randomBytes(1536)]));
      });
    const cases: Buffer[] = [];
    for (let i = 0; i < 25; i++) cases.push(crypto.randomBytes(1 + crypto.randomInt(4000)));
    // A chunk announcing a 200 MB message, and a SetChunkSize of 0.
    cases.push(Buffer.from([0x02, 0, 0, 0, 0x0b, 0xeb, 0xc2, 0x08, 0, 0, 0, 0]));
    cases.push(Buffer.from([0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]));
    // A command whose AMF0 is truncated.
    cases.push(Buffer.from([0x03, 0, 0, 0, 0, 0, 5, 0x14, 0, 0, 0, 0, 0x02, 0, 0x40, 0x61, 0x62]));
    for (const junk of cases) {
      const sock = net.connect(port, '127.0.0.1');
      await handshake(sock);
      sock.write(Buffer.concat([crypto.randomBytes(1536), junk]));
      await new Promise((r) => setTimeout(r, 20));
      sock.destroy();
    }
    assert.equal(channel.store.broadcasts().length, 0, 'nothing was published');
    // Still serving: a proper publisher is accepted by the next test.
  });

  test('the right key publishes; stopping the publisher ends the broadcast and leaves a recording', async () => {
    const started = waitFor(channel, 'broadcast-started', 20_000);
    const got = segments(channel, 4);
    const p = publish(`rtmp://127.0.0.1:${port}/live/${KEY}`, 6);
    const [b] = await started;
    const segs = await got;
    assert.ok(segs.every((s) => s.byteLength > 0));
    assert.equal(channel.status, 'live');
    const ended = waitFor(channel, 'broadcast-ended', 30_000);
    const { code } = await p.done;
    assert.equal(code, 0);
    const [e] = await ended;
    assert.equal(e.id, b.id);
    assert.equal(channel.status, 'ended');
    assert.ok(e.endedAtMs !== null);
  });

  test('a publisher that drops and returns within the grace period continues the broadcast', async () => {
    const started = waitFor(channel, 'broadcast-started', 20_000);
    const first = publish(`rtmp://127.0.0.1:${port}/live/${KEY}`, 30);
    const [b] = await started;
    await segments(channel, 2);
    first.child.kill('SIGKILL'); // connection lost, no unpublish
    const [exit] = await waitFor(channel, 'encoder-exit', 20_000);
    assert.equal(exit.next, 'await-publisher');
    const restarted = waitFor(channel, 'encoder-started', 20_000);
    const second = publish(`rtmp://127.0.0.1:${port}/live/${KEY}`, 4);
    const [run] = await restarted;
    assert.ok(run.discontinuitySequence >= 1);
    await segments(channel, 2);
    assert.equal(channel.broadcast?.id, b.id, 'same broadcast');
    // Listen before waiting for the publisher's process: the broadcast may end before it exits.
    const ended = waitFor(channel, 'broadcast-ended', 30_000);
    await second.done;
    await ended;
  });
});

describe('file input', () => {
  const dir = tempDir();
  const clip = path.join(dir, 'clip.mp4');
  before(() => {
    execFileSync('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=320x180:rate=15',
      '-f',
      'lavfi',
      '-i',
      'sine',
      '-t',
      '3',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-c:a',
      'aac',
      '-shortest',
      clip,
    ]);
  });

  test('a file played once becomes a finished recording', async () => {
    const channel = tinyChannel({ id: 'file', input: { kind: 'file', path: clip, loop: false } });
    const ended = waitFor(channel, 'broadcast-ended', 60_000);
    const { origin, base } = await liveOrigin(channel);
    const [b] = await ended;
    const vod = await (await fetch(`${base}/recordings/${b.id}/180p.m3u8`)).text();
    const durations = [...vod.matchAll(/#EXTINF:([0-9.]+)/g)].map((m) => Number(m[1]));
    const total = durations.reduce((x, y) => x + y, 0);
    assert.ok(Math.abs(total - 3) < 0.5, `recording lasts ${total} s`);
    assert.match(vod, /#EXT-X-ENDLIST/);
    await channel.destroy();
    await origin.destroy();
  });

  test('bad files are refused with a clear message and nothing is published', async () => {
    const audioOnly = path.join(dir, 'audio.m4a');
    execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine', '-t', '1', audioOnly]);
    const garbage = path.join(dir, 'garbage.mp4');
    fs.writeFileSync(garbage, Buffer.alloc(4096, 7));
    const cases: [string, RegExp][] = [
      [path.join(dir, 'missing.mp4'), /missing or not readable/],
      [dir, /not a regular file/],
      [audioOnly, /no video stream/],
      [garbage, /not a media file|cannot be decoded/],
    ];
    for (const [file, message] of cases) {
      const channel = tinyChannel({ id: 'bad', input: { kind: 'file', path: file, loop: false } });
      await assert.rejects(
        channel.start(),
        (err: Error) => err instanceof ConfigError && message.test(err.message),
      );
      assert.equal(channel.store.broadcasts().length, 0, `${file}: nothing published`);
      await channel.destroy();
    }
  });
});

describe('peertv source CLI', () => {
  const cli = (args: string[]) => peertv(['source', ...args]);

  test('--help prints the options', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--stream-key/);
  });

  test('bad flags and settings give one line and a non-zero exit', async () => {
    for (const args of [
      ['--nope'],
      ['--fps', 'fast'],
      ['--segment-duration', '0'],
      ['--ladder', '720p:1281x720:2500'],
      ['--ladder', 'a:640x360:600,a:320x180:300'],
      ['--file', 'x.mp4', '--rtmp'],
      ['--stream-key', 'short', '--rtmp'],
      ['--public-url', 'not a url'],
      ['--channel', '../etc'],
    ]) {
      const r = await cli([...args, '--data-dir', tempDir()]);
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^peertv source: /);
    }
  });

  test('a port in use is reported in one line', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const r = await cli(['--port', String(port), '--data-dir', tempDir()]);
    blocker.close();
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`origin port ${port} is in use`));
  });
});
