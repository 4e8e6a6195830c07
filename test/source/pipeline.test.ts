/**
 * The live pipeline with real ffmpeg: playlists, decodable keyframe-aligned segments, attestations,
 * a crashing encoder, and the recording left when the broadcast ends.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { importChannelKey, verifyChain, verifySegment, type Attestation } from '../../protocol/index.ts';
import type { Origin, SourceChannel } from '../../source/index.ts';
import { liveOrigin, segments, tempDir, tinyChannel, TINY_LADDER, waitFor } from '../helpers/source.ts';

/** First video packet of a segment file: its presentation time and whether it is a keyframe. */
function firstVideoPacket(file: string): { pts: number; key: boolean } {
  const out = execFileSync(
    'ffprobe',
    [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_packets',
      '-show_entries',
      'packet=pts_time,flags',
      '-read_intervals',
      '%+#1',
      '-of',
      'json',
      file,
    ],
    { encoding: 'utf8' },
  );
  const pkt = (JSON.parse(out) as { packets: { pts_time: string; flags: string }[] }).packets[0]!;
  return { pts: Number(pkt.pts_time), key: pkt.flags.startsWith('K') };
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const text = async (url: string): Promise<string> => {
  const r = await fetch(url);
  assert.equal(r.status, 200, `${url} → ${r.status}`);
  return r.text();
};

describe('live test-pattern channel', () => {
  let channel: SourceChannel;
  let origin: Origin;
  let base: string;
  const published: Attestation[] = [];

  before(async () => {
    channel = tinyChannel({ id: 'pipeline' });
    channel.on('segment', (a) => published.push(a));
    ({ origin, base } = await liveOrigin(channel));
    await segments(channel, 4 * TINY_LADDER.length);
  });

  after(async () => {
    await channel.destroy();
    await origin.destroy();
  });

  test('serves a master playlist and live media playlists for every rendition', async () => {
    const master = await text(`${base}/live/master.m3u8`);
    for (const r of TINY_LADDER) {
      assert.match(master, new RegExp(`RESOLUTION=${r.width}x${r.height}.*\\n${r.name}\\.m3u8`));
      const media = await text(`${base}/live/${r.name}.m3u8`);
      assert.match(media, /#EXT-X-TARGETDURATION:1\n/);
      assert.doesNotMatch(media, /#EXT-X-ENDLIST/);
      const uris = media.split('\n').filter((l) => l.endsWith('.ts'));
      assert.ok(uris.length >= 3 && uris.length <= 4, `window of ${uris.length} segments`);
    }
  });

  test('every segment decodes, starts with a keyframe, and lines up across renditions', () => {
    const bySeq = new Map<number, Map<string, number>>();
    for (const a of published) {
      const file = channel.store.segmentPath(a.rendition, a.mediaSequence);
      const probe = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
      assert.equal(probe.status, 0, `${a.rendition}/${a.mediaSequence} does not decode: ${probe.stderr}`);
      const first = firstVideoPacket(file);
      assert.ok(first.key, `${a.rendition}/${a.mediaSequence} does not start with a keyframe`);
      if (!bySeq.has(a.mediaSequence)) bySeq.set(a.mediaSequence, new Map());
      bySeq.get(a.mediaSequence)!.set(a.rendition, first.pts);
    }
    let compared = 0;
    for (const [seq, starts] of bySeq) {
      if (starts.size < TINY_LADDER.length) continue;
      const values = [...starts.values()];
      assert.ok(
        Math.max(...values) - Math.min(...values) < 0.001,
        `segment ${seq} starts differ: ${values.join(', ')}`,
      );
      compared++;
    }
    assert.ok(compared >= 3, `compared ${compared} segment boundaries`);
  });

  test('attestations verify with the public key from the origin and form a chain', async () => {
    const info = (await (await fetch(`${base}/channel.json`)).json()) as { publicKey: string };
    const key = await importChannelKey(info.publicKey);
    for (const r of TINY_LADDER) {
      const chain = published.filter((a) => a.rendition === r.name);
      assert.ok(chain.length >= 3);
      assert.deepEqual(await verifyChain(chain, key), { ok: true });
      for (const a of chain) {
        const bytes = new Uint8Array(
          fs.readFileSync(channel.store.segmentPath(a.rendition, a.mediaSequence)),
        );
        assert.deepEqual(await verifySegment(a, key, a, bytes), { ok: true });
      }
    }
  });

  test('an encoder killed mid-broadcast is restarted: discontinuity, no sequence number reused', async () => {
    const pid = channel.encoderPid;
    assert.ok(pid, 'encoder running');
    const before = channel.store.nextSequence();
    const restarted = waitFor(channel, 'encoder-started', 30_000);
    const exited = waitFor(channel, 'encoder-exit', 10_000);
    process.kill(pid, 'SIGKILL');
    const [exit] = await exited;
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.next, 'restart');
    const [info] = await restarted;
    assert.ok(info.firstSequence >= before, 'the new run starts after every number already taken');
    assert.ok(info.discontinuitySequence >= 1);
    await segments(channel, 3 * TINY_LADDER.length);
    assert.equal(channel.status, 'live');

    // No (rendition, sequence) published twice; every file on disk matches its attestation.
    const seen = new Set<string>();
    for (const a of published) {
      const k = `${a.rendition}/${a.mediaSequence}`;
      assert.ok(!seen.has(k), `${k} published twice`);
      seen.add(k);
    }
    const key = await importChannelKey(channel.store.signer.publicKey);
    for (const a of published) {
      const bytes = new Uint8Array(fs.readFileSync(channel.store.segmentPath(a.rendition, a.mediaSequence)));
      assert.deepEqual(
        await verifySegment(a, key, a, bytes),
        { ok: true },
        `${a.rendition}/${a.mediaSequence}`,
      );
    }
    // The chain holds across the restart.
    for (const r of TINY_LADDER)
      assert.deepEqual(
        await verifyChain(
          published.filter((a) => a.rendition === r.name),
          key,
        ),
        { ok: true },
      );
    // The live playlist marks the discontinuity (it is inside the window right after the restart).
    const media = await text(`${base}/live/${TINY_LADDER[0]!.name}.m3u8`);
    const discs = new Set(published.map((a) => a.discontinuitySequence));
    assert.ok(discs.size >= 2, 'segments from two encoder runs');
    if (channel.store.entries(TINY_LADDER[0]!.name, info.firstSequence - 3, info.firstSequence).length > 1)
      assert.match(media, /#EXT-X-DISCONTINUITY\n/);
    // Gaps (a rendition that had not finished its segment when killed) are listed as EXT-X-GAP, never reused.
    for (const r of TINY_LADDER) {
      const entries = channel.store.entries(r.name, 0, channel.store.nextSequence());
      const seqs = entries.map((e) => (e.kind === 'segment' ? e.attestation.mediaSequence : e.mediaSequence));
      assert.deepEqual(
        seqs,
        [...seqs].sort((x, y) => x - y),
      );
      assert.equal(new Set(seqs).size, seqs.length);
    }
  });

  test('ending the broadcast leaves a playable VOD recording', async () => {
    const ended = waitFor(channel, 'broadcast-ended', 20_000);
    await channel.end();
    const [b] = await ended;
    const live = await text(`${base}/live/${TINY_LADDER[0]!.name}.m3u8`);
    assert.match(live, /#EXT-X-ENDLIST\n$/);
    const info = (await (await fetch(`${base}/channel.json`)).json()) as {
      status: string;
      recordings: { id: string; master: string }[];
    };
    assert.equal(info.status, 'ended');
    const rec = info.recordings.find((r) => r.id === b.id);
    assert.ok(rec, 'the recording is listed');
    const vod = await text(rec.master.replace('master.m3u8', `${TINY_LADDER[1]!.name}.m3u8`));
    assert.match(vod, /#EXT-X-PLAYLIST-TYPE:VOD/);
    assert.match(vod, /#EXT-X-ENDLIST/);
    const listed = vod.split('\n').filter((l) => l.endsWith('.ts')).length;
    assert.ok(listed >= published.filter((a) => a.rendition === TINY_LADDER[1]!.name).length);
    // ffmpeg itself plays the whole recording from the origin (all renditions).
    // (async: the origin answers from this very process)
    const play = await run('ffmpeg', ['-v', 'error', '-i', rec.master, '-map', '0', '-f', 'null', '-']);
    assert.equal(play.code, 0, `ffmpeg could not play the recording: ${play.stderr}`);
  });
});

describe('restarting the source process on the same data directory', () => {
  test('continues sequence numbers and the attestation chain, keeps the channel key', async () => {
    const dataDir = tempDir();
    const first = tinyChannel({ id: 'again', dataDir, ladder: [TINY_LADDER[1]!] });
    const { origin } = await liveOrigin(first);
    const a = await segments(first, 2);
    await first.destroy();
    await origin.destroy();
    const lastSeq = first.store.nextSequence() - 1;

    const second = tinyChannel({ id: 'again', dataDir, ladder: [TINY_LADDER[1]!] });
    assert.equal(second.store.signer.publicKey, first.store.signer.publicKey);
    assert.equal(second.status, 'ended', 'the earlier broadcast is a recording now');
    const got = segments(second, 2);
    await second.start();
    const b = await got;
    await second.destroy();
    assert.ok(b[0]!.mediaSequence > lastSeq, `${b[0]!.mediaSequence} > ${lastSeq}`);
    assert.ok(b[0]!.discontinuitySequence > a[0]!.discontinuitySequence);
    const key = await importChannelKey(second.store.signer.publicKey);
    const chain = second.store
      .entries('90p', 0, Number.MAX_SAFE_INTEGER)
      .flatMap((e) => (e.kind === 'segment' ? [e.attestation] : []));
    assert.deepEqual(await verifyChain(chain, key), { ok: true });
    assert.equal(second.store.broadcasts().length, 2);
  });
});
