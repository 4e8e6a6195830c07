/**
 * RTMP ingest under attack and faults: connections that trickle bytes to hold slots, partial messages
 * that would pin memory before authentication, and publishers that hang or die while on air. Each test
 * reproduces the attack or fault (real ffmpeg publishers, raw sockets speaking RTMP) and checks that the
 * broadcaster still gets on air, memory stays bounded, and numbering and attestations stay consistent.
 * All traffic on 127.0.0.1; attackers and broadcaster share that address.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { importChannelKey, verifyChain, type Attestation } from '../../protocol/index.ts';
import {
  DEFAULT_RTMP,
  DEFAULT_TAKEOVER,
  mediaPlaylist,
  RtmpIngestServer,
  streamKeyMatches,
  type IngestSession,
  type RtmpRefusalCode,
  type SourceChannel,
  type SourceChannelEvents,
} from '../../source/index.ts';
import { encodeAmf0 } from '../../source/rtmp/amf0.ts';
import {
  ffmpegPublisher,
  liveOrigin,
  publishers,
  segments,
  tempDir,
  tinyChannel,
  TINY_LADDER,
  waitFor,
} from '../helpers/source.ts';

const KEY = 'hardening-key-123';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it holds (generous: the machine may be loaded). */
async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// ---- an ffmpeg publisher, as OBS ----

const children = publishers;

/** Ends a publisher we started (also a stopped one), by its pid. */
function killPublisher(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(child.pid, 'SIGCONT');
    process.kill(child.pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

after(() => {
  for (const c of children) killPublisher(c);
});

// ---- a raw RTMP client ----

const sockets = new Set<net.Socket>();
after(() => {
  for (const s of sockets) s.destroy();
});

function chunked(
  csid: number,
  type: number,
  streamId: number,
  timestampMs: number,
  payload: Buffer,
  chunkSize: number,
) {
  const h = Buffer.alloc(12);
  h[0] = csid;
  h.writeUIntBE(timestampMs & 0xffffff, 1, 3);
  h.writeUIntBE(payload.length, 4, 3);
  h[7] = type;
  h.writeUInt32LE(streamId, 8);
  const parts: Buffer[] = [h];
  for (let off = 0; off < payload.length; off += chunkSize) {
    if (off > 0) parts.push(Buffer.from([0xc0 | csid]));
    parts.push(payload.subarray(off, off + chunkSize));
  }
  return Buffer.concat(parts);
}

class RawRtmp {
  readonly sock: net.Socket;
  /** What the server sent, as latin1 text (enough to find status codes). */
  text = '';
  chunkSize = 128;
  closedByServer = false;
  readonly closed: Promise<void>;
  #destroyedByUs = false;

  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    sockets.add(this.sock);
    this.sock.on('error', () => {});
    this.sock.on('data', (d) => {
      if (this.text.length < 64 * 1024) this.text += d.toString('latin1');
    });
    this.closed = new Promise((resolve) =>
      this.sock.on('close', () => {
        sockets.delete(this.sock);
        this.closedByServer = !this.#destroyedByUs;
        resolve();
      }),
    );
  }

  destroy(): void {
    this.#destroyedByUs = true;
    this.sock.destroy();
  }

  async handshake(): Promise<void> {
    this.sock.write(Buffer.concat([Buffer.from([3]), crypto.randomBytes(1536)]));
    await until('S0S1S2', () => this.text.length >= 1 + 2 * 1536 || this.sock.destroyed, 20_000);
    this.sock.write(crypto.randomBytes(1536));
    this.text = this.text.slice(1 + 2 * 1536);
  }

  message(csid: number, type: number, streamId: number, timestampMs: number, payload: Buffer): void {
    if (!this.sock.destroyed)
      this.sock.write(chunked(csid, type, streamId, timestampMs, payload, this.chunkSize));
  }

  setChunkSize(size: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(size);
    this.message(2, 1, 0, 0, b);
    this.chunkSize = size;
  }

  async connect(port: number): Promise<void> {
    this.message(
      3,
      20,
      0,
      0,
      encodeAmf0('connect', 1, { app: 'live', tcUrl: `rtmp://127.0.0.1:${port}/live` }),
    );
    await until(
      'connect result',
      () => this.text.includes('NetConnection.Connect.Success') || this.sock.destroyed,
      20_000,
    );
  }

  /** connect, createStream, publish; resolves with the server's answer. */
  async publish(port: number, key: string): Promise<'started' | 'refused'> {
    await this.connect(port);
    this.message(3, 20, 0, 0, encodeAmf0('createStream', 2, null));
    this.message(8, 20, 1, 0, encodeAmf0('publish', 3, null, key, 'live'));
    await until(
      'publish answer',
      () => /NetStream\.Publish\.(Start|BadName)/.test(this.text) || this.sock.destroyed,
      20_000,
    );
    return this.text.includes('NetStream.Publish.Start') ? 'started' : 'refused';
  }
}

async function rawSession(port: number): Promise<RawRtmp> {
  const c = new RawRtmp(port);
  await c.handshake();
  return c;
}

// ---- an FLV file replayed over RTMP in real time (an encoder we can gate, pause and cut) ----

interface FlvTag {
  type: number;
  timestampMs: number;
  data: Buffer;
}

function readFlv(file: string): FlvTag[] {
  const b = fs.readFileSync(file);
  const tags: FlvTag[] = [];
  let p = b.readUInt32BE(5) + 4;
  while (p + 11 <= b.length) {
    const size = b.readUIntBE(p + 1, 3);
    if (p + 11 + size > b.length) break;
    tags.push({
      type: b[p]! & 0x1f,
      timestampMs: b.readUIntBE(p + 4, 3) | (b[p + 7]! << 24),
      data: b.subarray(p + 11, p + 11 + size),
    });
    p += 11 + size + 4;
  }
  return tags;
}

const isConfig = (t: FlvTag) =>
  t.type === 18 ||
  (t.type === 9 && t.data[1] === 0 && (t.data[0]! & 0x0f) === 7) ||
  (t.type === 8 && t.data[1] === 0);

/**
 * Publishes `tags` with the key: metadata and codec configuration at once, then the frames (from the
 * first keyframe) paced in real time once `gate` resolves, looping. `pause()` stops sending but keeps
 * the connection open, as a hung or half-open encoder does.
 */
async function replayPublisher(port: number, tags: FlvTag[], gate: Promise<void> = Promise.resolve()) {
  const c = await rawSession(port);
  c.setChunkSize(4096);
  const answer = await c.publish(port, KEY);
  assert.equal(answer, 'started', 'the right key is accepted at publish');
  for (const t of tags.filter(isConfig))
    c.message(t.type === 18 ? 5 : t.type === 8 ? 4 : 6, t.type, 1, 0, t.data);
  const frames = tags.filter((t) => !isConfig(t));
  const firstKey = frames.findIndex((t) => t.type === 9 && t.data[0]! >> 4 === 1);
  const loop = frames.slice(firstKey);
  const loopMs = loop.at(-1)!.timestampMs - loop[0]!.timestampMs + 67;
  let paused = false;
  const running = (async () => {
    await gate;
    const start = Date.now();
    for (let round = 0; !paused && !c.sock.destroyed; round++) {
      for (const t of loop) {
        if (paused || c.sock.destroyed) return;
        const ts = round * loopMs + t.timestampMs - loop[0]!.timestampMs;
        const wait = start + ts - Date.now();
        if (wait > 0) await sleep(wait);
        c.message(t.type === 8 ? 4 : 6, t.type, 1, ts, t.data);
      }
    }
  })();
  return {
    client: c,
    pause: () => void (paused = true),
    stop: async () => {
      paused = true;
      c.destroy();
      await running;
    },
  };
}

// ---- a live RTMP channel with its origin and ingest server ----

type ExitInfo = Parameters<SourceChannelEvents['encoder-exit']>[0];
type StartInfo = Parameters<SourceChannelEvents['encoder-started']>[0];
type Replaced = Parameters<SourceChannelEvents['publisher-replaced']>[0];

async function rtmpChannel(id: string) {
  const channel = tinyChannel({ id, input: { kind: 'rtmp', streamKey: KEY }, reconnectGraceMs: 20_000 });
  const { origin, base } = await liveOrigin(channel);
  const rtmp = new RtmpIngestServer({ resolve: (k) => (streamKeyMatches(k, KEY) ? channel : undefined) });
  const port = await rtmp.listen(0);
  const log = {
    attestations: [] as Attestation[],
    errors: [] as { code: string; message: string }[],
    exits: [] as ExitInfo[],
    starts: [] as StartInfo[],
    replaced: [] as Replaced[],
    refused: [] as { sessionId: string; code: RtmpRefusalCode; reason: string }[],
  };
  channel.on('segment', (a) => log.attestations.push(a));
  channel.on('error', (e) => log.errors.push(e));
  channel.on('encoder-exit', (e) => log.exits.push(e));
  channel.on('encoder-started', (e) => log.starts.push(e));
  channel.on('publisher-replaced', (e) => log.replaced.push(e));
  rtmp.on('refused', (r) => log.refused.push(r));
  return {
    channel,
    base,
    rtmp,
    port,
    url: `rtmp://127.0.0.1:${port}/live/${KEY}`,
    log,
    close: async () => {
      await rtmp.destroy();
      await channel.destroy();
      await origin.destroy();
    },
  };
}

/** Segments published by the run that started with discontinuity `disc`, per rendition. */
function segmentsOfRun(channel: SourceChannel, disc: number, count: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const got = new Map<string, number>();
    const timer = setTimeout(() => {
      channel.off('segment', on);
      reject(new Error(`timed out waiting for ${count} segments of the run with discontinuity ${disc}`));
    }, 60_000);
    const on = (a: Attestation) => {
      if (a.discontinuitySequence !== disc) return;
      got.set(a.rendition, (got.get(a.rendition) ?? 0) + 1);
      if (TINY_LADDER.every((r) => (got.get(r.name) ?? 0) >= count)) {
        clearTimeout(timer);
        channel.off('segment', on);
        resolve();
      }
    };
    channel.on('segment', on);
  });
}

/**
 * Numbering across a takeover: no sequence number twice, every number between the first and the last
 * accounted for (segment or gap), signed chains unbroken, nothing failed to publish, and the new run
 * marked as a discontinuity in the live playlist.
 */
async function assertConsistentNumbering(ch: Awaited<ReturnType<typeof rtmpChannel>>, newDisc: number) {
  const key = await importChannelKey(ch.channel.store.signer.publicKey);
  for (const r of TINY_LADDER) {
    const list = ch.log.attestations.filter((a) => a.rendition === r.name);
    const seqs = list.map((a) => a.mediaSequence);
    assert.equal(new Set(seqs).size, seqs.length, `${r.name}: a sequence number was published twice`);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      `${r.name}: out of order`,
    );
    for (let s = seqs[0]!; s <= seqs.at(-1)!; s++)
      assert.ok(
        ch.channel.store.entry(r.name, s),
        `${r.name}: sequence ${s} missing (neither segment nor gap)`,
      );
    const chain = await verifyChain(list, key);
    assert.ok(chain.ok, `${r.name}: ${chain.ok ? '' : chain.message}`);
    // Each takeover starts a run one discontinuity later, after the last number of the run before; the
    // whole broadcast, rendered as the origin renders it, marks each one right before its first segment.
    const discs = [...new Set(list.map((a) => a.discontinuitySequence))];
    assert.ok(
      discs.includes(newDisc) && discs[0]! < newDisc,
      `${r.name}: segments on both sides of the takeover`,
    );
    const all = mediaPlaylist({
      entries: ch.channel.store.entries(r.name, seqs[0]!, seqs.at(-1)!),
      segmentDurationS: 1,
      uri: (seq) => `${seq}.ts`,
      ended: false,
      vod: false,
    });
    assert.equal(
      all.match(/#EXT-X-DISCONTINUITY\n/g)?.length,
      discs.length - 1,
      `${r.name}: discontinuities`,
    );
    for (let i = 1; i < discs.length; i++) {
      assert.equal(discs[i], discs[i - 1]! + 1);
      const first = list.find((a) => a.discontinuitySequence === discs[i])!;
      const lastBefore = list.filter((a) => a.discontinuitySequence === discs[i - 1]).at(-1)!;
      assert.ok(first.mediaSequence > lastBefore.mediaSequence);
      assert.match(
        all,
        new RegExp(
          `#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:[^\n]+\n#EXTINF:[^\n]+\n${first.mediaSequence}\\.ts\n`,
        ),
        `${r.name}: run ${discs[i]} is marked`,
      );
    }
    const live = await (await fetch(`${ch.base}/live/${r.name}.m3u8`)).text();
    assert.ok(
      live.includes('#EXT-X-DISCONTINUITY\n') || /#EXT-X-DISCONTINUITY-SEQUENCE:[1-9]/.test(live),
      `${r.name}: live playlist\n${live}`,
    );
  }
  assert.deepEqual(
    ch.log.errors.filter((e) => e.code === 'publish-failed' || e.code === 'encoder-crashed'),
    [],
    'no publication failure and no encoder crash',
  );
}

// =====================================================================================================

describe('RTMP ingest: unauthenticated connections are bounded', () => {
  let ch: Awaited<ReturnType<typeof rtmpChannel>>;
  before(async () => {
    ch = await rtmpChannel('trickle');
  });
  after(() => ch.close());

  test('connections that trickle bytes are closed at the publish deadline, however active', async () => {
    const conns = [0, 1, 2].map(() => new RawRtmp(ch.port));
    const trickle = setInterval(() => {
      for (const c of conns) if (!c.sock.destroyed) c.sock.write(Buffer.from([3]));
    }, 500);
    try {
      await until('the server to close all three', () => conns.every((c) => c.closedByServer), 30_000);
    } finally {
      clearInterval(trickle);
    }
    const mine = ch.log.refused.filter((r) => r.code === 'publish-deadline');
    assert.ok(mine.length >= 3, `refused: ${JSON.stringify(ch.log.refused)}`);
    assert.equal(ch.rtmp.stats().pending, 0);
  });

  test("40 trickling connections from the broadcaster's own address cannot keep it off air", async () => {
    // The attack: 40 connections trickling one byte every 5 s, each reopened whenever it is
    // closed, plus 4 that complete the handshake and `connect` at full speed and then sit (reopened 2 s
    // after being closed).
    let attacking = true;
    let endAttack!: () => void;
    const attackOver = new Promise<void>((r) => (endAttack = r));
    let opened = 0;
    const attacker = async (sit: boolean) => {
      while (attacking) {
        opened++;
        const c = new RawRtmp(ch.port);
        if (sit) {
          await c.handshake().catch(() => {});
          if (!c.sock.destroyed) await c.connect(ch.port).catch(() => {});
        } else {
          const t = setInterval(() => c.sock.write(Buffer.from([3])), 5000);
          c.sock.write(Buffer.from([3]));
          void c.closed.then(() => clearInterval(t));
        }
        await Promise.race([c.closed, attackOver]);
        c.destroy();
        if (attacking) await sleep(sit ? 2000 : 250);
      }
    };
    const attackers = [...Array(40).fill(false), ...Array(4).fill(true)].map((sit) => attacker(sit));
    let publisher: ReturnType<typeof ffmpegPublisher> | undefined;
    try {
      await sleep(1500); // every slot taken and churning
      const refusedBefore = ch.log.refused.length;
      const started = waitFor(ch.channel, 'broadcast-started', 45_000);
      publisher = ffmpegPublisher(ch.url, 40);
      await started;
      await segments(ch.channel, 2, '180p');
      assert.equal(ch.channel.status, 'live');
      // While the attack goes on, pending connections stay within the per-address cap.
      let maxPending = 0;
      for (let i = 0; i < 40; i++) {
        maxPending = Math.max(maxPending, ch.rtmp.stats().pending);
        await sleep(50);
      }
      assert.ok(maxPending <= DEFAULT_RTMP.maxPendingPerAddress, `pending ${maxPending}`);
      const codes = new Set(ch.log.refused.slice(refusedBefore).map((r) => r.code));
      assert.ok(codes.has('evicted'), `attackers were evicted (codes: ${[...codes].join(', ')})`);
      for (const code of codes) assert.ok(['evicted', 'publish-deadline'].includes(code), code);
      assert.ok(opened > 44);
      assert.ok(!ch.log.errors.some((e) => e.code === 'publisher-refused'));
    } finally {
      attacking = false;
      endAttack();
      await Promise.all(attackers);
      if (publisher) killPublisher(publisher.child);
    }
  });
});

describe('RTMP ingest: memory before publish is bounded (kilobytes) and released on close', () => {
  let rtmp: RtmpIngestServer;
  let port: number;
  const refused: { sessionId: string; code: RtmpRefusalCode; reason: string }[] = [];
  let accepted: IngestSession | undefined;
  const flv: Buffer[] = [];
  before(async () => {
    const target = {
      acceptPublisher: (s: IngestSession) => {
        accepted = s;
        const r: Readable = s.openFlv();
        r.on('data', (d: Buffer) => flv.push(d));
        return true;
      },
    };
    rtmp = new RtmpIngestServer({ resolve: (k) => (streamKeyMatches(k, KEY) ? target : undefined) });
    rtmp.on('refused', (r) => refused.push(r));
    port = await rtmp.listen(0);
  });
  after(() => rtmp.destroy());

  const lastRefusal = async (c: RawRtmp) => {
    await c.closed;
    assert.ok(c.closedByServer, 'the server closed the connection');
    return refused.at(-1)!;
  };

  test('a message, a chunk size or chunk streams beyond the pre-publish limits close the connection', async () => {
    const limits = DEFAULT_RTMP.pendingLimits;
    // A message announcing 1 MiB (the old server took up to 16 MiB before any key).
    let c = await rawSession(port);
    c.sock.write(chunked(3, 20, 0, 0, crypto.randomBytes(1024 * 1024), 128).subarray(0, 12 + 128));
    let r = await lastRefusal(c);
    assert.equal(r.code, 'limit-exceeded');
    assert.match(r.reason, /larger than 65536 before publish/);

    c = await rawSession(port);
    c.setChunkSize(1024 * 1024);
    r = await lastRefusal(c);
    assert.equal(r.code, 'limit-exceeded');
    assert.match(r.reason, /chunk size/);

    c = await rawSession(port);
    for (let csid = 3; csid < 3 + limits.maxChunkStreams + 1; csid++)
      c.sock.write(chunked(csid, 8, 0, 0, Buffer.alloc(4096), 128).subarray(0, 12 + 128)); // unfinished
    r = await lastRefusal(c);
    assert.equal(r.code, 'limit-exceeded');
    assert.match(r.reason, /chunk streams/);
    await until('connections released', () => rtmp.stats().connections === 0);
  });

  test('partial messages are accounted per connection and released on close', async () => {
    const c = await rawSession(port);
    // Three unfinished messages of 40 000 bytes, 10 240 bytes of each sent, 128-byte chunks.
    for (let csid = 3; csid < 6; csid++) {
      const part = chunked(csid, 8, 0, 0, crypto.randomBytes(40_000), 128);
      c.sock.write(part.subarray(0, 12 + 128 + 79 * 129));
    }
    await until('30 000 bytes buffered', () => rtmp.stats().pendingBufferedBytes >= 30_000);
    const s = rtmp.stats();
    assert.equal(s.pending, 1);
    assert.ok(
      s.pendingBufferedBytes <= DEFAULT_RTMP.pendingLimits.maxBufferedBytes,
      `${s.pendingBufferedBytes}`,
    );
    c.destroy();
    await until('released on close', () => rtmp.stats().connections === 0);
    assert.equal(rtmp.stats().bufferedBytes, 0);
  });

  test('40 connections flooding partial messages before publish hold kilobytes each, then nothing', async () => {
    // The attack, shaped to stay under the message cap: 8 chunk streams per connection, each
    // with an unfinished 60 000-byte message, 128-byte chunks round-robin, up to 400 kB per connection.
    const limits = DEFAULT_RTMP.pendingLimits;
    const from = refused.length;
    let maxBuffered = 0;
    const sampler = setInterval(
      () => (maxBuffered = Math.max(maxBuffered, rtmp.stats().pendingBufferedBytes)),
      10,
    );
    const flood = async () => {
      const c = await rawSession(port);
      const body = crypto.randomBytes(128);
      for (let s = 0; s < 8; s++)
        c.sock.write(Buffer.concat([Buffer.from([3 + s, 0, 0, 0, 0, 0xea, 0x60, 8, 0, 0, 0, 0]), body]));
      for (let i = 0; i < 3000 && !c.sock.destroyed; i++) {
        if (!c.sock.write(Buffer.concat([Buffer.from([0xc0 | (3 + (i % 8))]), body])))
          await Promise.race([new Promise((r) => c.sock.once('drain', r)), c.closed]);
      }
      await Promise.race([c.closed, sleep(30_000)]);
      return c;
    };
    const conns = await Promise.all(Array.from({ length: 40 }, flood));
    clearInterval(sampler);
    assert.ok(
      conns.every((c) => c.closedByServer),
      'the server closed every flooding connection',
    );
    const codes = refused.slice(from).map((r) => r.code);
    assert.ok(codes.includes('limit-exceeded'), codes.join(', '));
    for (const code of codes) assert.ok(code === 'limit-exceeded' || code === 'evicted', code);
    // At most maxPendingPerAddress connections, each within its budget (plus a handshake buffer).
    const bound = DEFAULT_RTMP.maxPendingPerAddress * (limits.maxBufferedBytes + 1537);
    assert.ok(maxBuffered > 0 && maxBuffered <= bound, `peak ${maxBuffered} bytes buffered, bound ${bound}`);
    await until('all released', () => rtmp.stats().connections === 0);
    assert.equal(rtmp.stats().bufferedBytes, 0);
  });

  test('once publishing, limits are generous: a 2 MiB keyframe arrives intact', async () => {
    const c = await rawSession(port);
    c.setChunkSize(4096);
    assert.equal(await c.publish(port, KEY), 'started');
    const avcConfig = Buffer.from([0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff]);
    c.message(6, 9, 1, 0, avcConfig);
    const keyframe = Buffer.concat([Buffer.from([0x17, 1, 0, 0, 0]), crypto.randomBytes(2 * 1024 * 1024)]);
    c.message(6, 9, 1, 40, keyframe);
    const want = crypto.createHash('sha256').update(keyframe).digest('hex');
    const found = () => {
      const all = Buffer.concat(flv);
      for (let p = 13; p + 11 <= all.length;) {
        const size = all.readUIntBE(p + 1, 3);
        if (p + 11 + size > all.length) return false;
        const data = all.subarray(p + 11, p + 11 + size);
        if (size === keyframe.length && crypto.createHash('sha256').update(data).digest('hex') === want)
          return true;
        p += 15 + size;
      }
      return false;
    };
    await until('the keyframe in the FLV handed to the encoder', found);
    assert.ok(accepted);
    assert.equal(rtmp.stats().bufferedBytes, 0, 'nothing held once the message is complete');
    c.destroy();
    await accepted.closed;
  });
});

describe('RTMP ingest: a new publisher takes over from a hung or dead one', () => {
  let clip: string;
  let tags: FlvTag[];
  before(() => {
    clip = path.join(tempDir(), 'clip.flv');
    execFileSync('ffmpeg', [
      ...['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15', '-f', 'lavfi', '-i', 'sine'],
      ...['-t', '6', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '15', '-c:a', 'aac', '-b:a', '48k'],
      ...['-f', 'flv', clip],
    ]);
    tags = readFlv(clip);
  });

  test('a SIGSTOPped publisher is replaced by a new one at once; numbering stays consistent', async () => {
    const ch = await rtmpChannel('hung');
    const a = ffmpegPublisher(ch.url, 60);
    let b: ReturnType<typeof ffmpegPublisher> | undefined;
    try {
      await waitFor(ch.channel, 'broadcast-started', 30_000);
      await segments(ch.channel, 3, '180p');
      const broadcast = ch.channel.broadcast!.id;
      const disc = ch.log.starts.at(-1)!.discontinuitySequence;
      process.kill(a.child.pid!, 'SIGSTOP'); // hung encoder: its TCP connection stays open, silent
      await sleep(DEFAULT_TAKEOVER.silentPublisherMs + 1000);
      const replaced = waitFor(ch.channel, 'publisher-replaced', 30_000);
      b = ffmpegPublisher(ch.url, 60);
      const [info] = await replaced;
      const t0 = Date.now();
      assert.equal(info.reason, 'silent');
      const [run] = await waitFor(ch.channel, 'encoder-started', 30_000);
      const handoverMs = Date.now() - t0;
      assert.ok(handoverMs < 15_000, `the old encoder flushed and exited in ${handoverMs} ms`);
      assert.equal(run.discontinuitySequence, disc + 1);
      await segmentsOfRun(ch.channel, disc + 1, 2);
      assert.equal(a.child.exitCode, null, 'the hung publisher is still stopped, not gone');
      assert.equal(ch.channel.broadcast!.id, broadcast, 'the same broadcast continues');
      assert.equal(ch.channel.status, 'live');
      assert.deepEqual(
        ch.log.exits.map((e) => e.next),
        ['replaced'],
        'the replaced run neither restarted nor waited for its publisher',
      );
      await assertConsistentNumbering(ch, disc + 1);
    } finally {
      killPublisher(a.child);
      if (b) killPublisher(b.child);
      await ch.close();
    }
  });

  test('kill -9 of the publisher and a new one at once: accepted, not refused', async () => {
    const ch = await rtmpChannel('killed');
    const a = ffmpegPublisher(ch.url, 60);
    let b: Awaited<ReturnType<typeof replayPublisher>> | undefined;
    let c: ReturnType<typeof ffmpegPublisher> | undefined;
    let heldPid: number | undefined;
    try {
      await waitFor(ch.channel, 'broadcast-started', 30_000);
      await segments(ch.channel, 3, '180p');
      const disc = ch.log.starts.at(-1)!.discontinuitySequence;

      // 1. The race, made deterministic: the restarted encoder is connected and authenticated, and its
      //    first keyframe leaves the moment the killed one's connection is seen closed, while the old
      //    run's encoder is still finishing (held stopped for a moment, as on a loaded machine).
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      b = await replayPublisher(ch.port, tags, gate);
      heldPid = ch.channel.encoderPid!;
      process.kill(heldPid, 'SIGSTOP');
      const oldClosed = waitFor(ch.rtmp, 'closed', 20_000);
      process.kill(a.child.pid!, 'SIGKILL');
      await oldClosed;
      const started = waitFor(ch.channel, 'encoder-started', 30_000);
      open();
      const outcome = await Promise.race([
        waitFor(ch.channel, 'publisher-replaced', 20_000).then(([r]) => r.reason),
        b.client.closed.then(() => 'refused' as const),
      ]);
      process.kill(heldPid, 'SIGCONT');
      heldPid = undefined;
      assert.equal(
        outcome,
        'gone',
        `the new publisher takes over at once (${b.client.text.match(/channel[^\0]*publisher/)?.[0] ?? ''})`,
      );
      const [run] = await started;
      assert.equal(run.discontinuitySequence, disc + 1);
      await segmentsOfRun(ch.channel, disc + 1, 2);
      assert.ok(!b.client.closedByServer, 'the new publisher is on air');

      // 2. As an operator does it: kill -9 the encoder and start a new one right away.
      const restarted = waitFor(ch.channel, 'encoder-started', 30_000);
      await b.stop(); // its connection drops without unpublishing, like a kill -9
      c = ffmpegPublisher(ch.url, 60);
      const [run2] = await restarted;
      assert.equal(run2.discontinuitySequence, disc + 2);
      await segmentsOfRun(ch.channel, disc + 2, 2);

      assert.deepEqual(
        ch.log.errors.filter((e) => e.code === 'publisher-refused'),
        [],
        'never refused with "channel already has a publisher"',
      );
      assert.ok(!ch.log.refused.some((r) => r.code === 'channel-busy'));
      assert.ok(!ch.log.exits.some((e) => e.next === 'restart'), 'the old runs were not restarted');
      assert.equal(ch.channel.broadcast!.endedAtMs, null, 'one broadcast throughout');
      await assertConsistentNumbering(ch, disc + 1);
    } finally {
      if (heldPid !== undefined) process.kill(heldPid, 'SIGCONT');
      killPublisher(a.child);
      if (c) killPublisher(c.child);
      await b?.stop();
      await ch.close();
    }
  });

  test('two active publishers: the one on air keeps it; once it goes silent (half-open), the next takes over', async () => {
    const ch = await rtmpChannel('two');
    const a = await replayPublisher(ch.port, tags);
    let b2: Awaited<ReturnType<typeof replayPublisher>> | undefined;
    try {
      await waitFor(ch.channel, 'broadcast-started', 30_000);
      await segments(ch.channel, 3, '180p');
      const disc = ch.log.starts.at(-1)!.discontinuitySequence;
      // A second active encoder with the same key is refused; the first stays on air.
      const b = await replayPublisher(ch.port, tags);
      await b.client.closed;
      assert.ok(b.client.closedByServer);
      assert.match(b.client.text, /channel already has a publisher/);
      assert.equal(ch.log.refused.at(-1)?.code, 'channel-busy');
      assert.ok(!a.client.closedByServer);
      await segments(ch.channel, 2, '180p');
      assert.equal(ch.log.starts.length, 1, 'still the first run');
      // The one on air stops sending but keeps its connection (half-open TCP, hung encoder).
      a.pause();
      await sleep(DEFAULT_TAKEOVER.silentPublisherMs + 1000);
      const replaced = waitFor(ch.channel, 'publisher-replaced', 30_000);
      b2 = await replayPublisher(ch.port, tags);
      const [info] = await replaced;
      assert.equal(info.reason, 'silent');
      await segmentsOfRun(ch.channel, disc + 1, 2);
      await a.client.closed;
      assert.ok(a.client.closedByServer, 'the silent publisher was disconnected');
      assert.deepEqual(
        ch.log.exits.map((e) => e.next),
        ['replaced'],
      );
      await assertConsistentNumbering(ch, disc + 1);
    } finally {
      await a.stop();
      await b2?.stop();
      await ch.close();
    }
  });
});
