import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  importChannelKey,
  parseAttestation,
  verifyChain,
  verifySegment,
  type Attestation,
} from '../../protocol/index.ts';
import { Origin, type ChannelCounters, type SourceChannel } from '../../source/index.ts';
import type { AddressInfo } from 'node:net';
import { liveOrigin, segments, tinyChannel } from '../helpers/source.ts';

const M3U8 = 'application/vnd.apple.mpegurl';

interface ChannelJson {
  id: string;
  title: string;
  status: string;
  originUrl: string;
  publicKey: string;
  publicKeyAlgorithm: string;
  segmentDurationS: number;
  renditions: { name: string; width: number; height: number; videoKbps: number; audioKbps: number }[];
  live: { master: string; broadcast: string } | null;
  recordings: { id: string; title: string; startedAt: string; endedAt: string; master: string }[];
}

/** `max-age` of a Cache-Control header (undefined when absent). */
const maxAge = (cc: string | null): number | undefined => {
  const m = /max-age=(\d+)/.exec(cc ?? '');
  return m ? Number(m[1]) : undefined;
};

/** Segment URIs of a media playlist, resolved against its URL; gap entries are flagged. */
function segmentUris(text: string, playlistUrl: string): { url: string; gap: boolean }[] {
  const out: { url: string; gap: boolean }[] = [];
  let gap = false;
  for (const line of text.split('\n')) {
    if (line === '#EXT-X-GAP') gap = true;
    else if (line && !line.startsWith('#')) {
      out.push({ url: new URL(line, playlistUrl).href, gap });
      gap = false;
    }
  }
  return out;
}

describe('origin serving a live tiny channel', () => {
  let channel: SourceChannel;
  let origin: Origin;
  let base: string;
  let dataDir: string;
  let key: CryptoKey;
  let published: Attestation[];
  /** A published 180p segment, its attestation and bytes on disk. */
  let att: Attestation;
  let bytes: Buffer;
  let keyFile: string;

  /** A request sent as-is (no URL normalisation), for paths fetch() would rewrite. */
  const raw = (
    method: string,
    rawPath: string,
    headers: http.OutgoingHttpHeaders = {},
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> => {
    const u = new URL(origin.publicUrl);
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: u.hostname, port: u.port, method, path: rawPath, headers, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
  };

  before(async () => {
    channel = tinyChannel();
    dataDir = path.dirname(path.dirname(channel.store.dir));
    keyFile = path.join(channel.store.dir, 'channel-key.pem');
    const ready = Promise.all([segments(channel, 3, '180p'), segments(channel, 3, '90p')]);
    ({ origin, base } = await liveOrigin(channel));
    published = (await ready).flat();
    key = await importChannelKey(channel.store.signer.publicKey);
    att = published.find((a) => a.rendition === '180p' && a.mediaSequence === 1)!;
    assert.ok(att, 'segment 1 of 180p was published');
    bytes = fs.readFileSync(channel.store.segmentPath('180p', 1));
  });

  after(async () => {
    await channel?.destroy();
    await origin?.destroy();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('channel.json describes the live channel', async () => {
    const res = await fetch(`${base}/channel.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/json/);
    assert.match(res.headers.get('cache-control')!, /no-cache/);
    const info = (await res.json()) as ChannelJson;
    assert.equal(info.id, 'test');
    assert.equal(info.status, 'live');
    assert.equal(info.publicKey, channel.store.signer.publicKey);
    assert.equal(info.publicKeyAlgorithm, 'Ed25519');
    assert.equal(info.segmentDurationS, 1);
    assert.deepEqual(
      info.renditions.map((r) => [r.name, r.width, r.height]),
      [
        ['180p', 320, 180],
        ['90p', 160, 90],
      ],
    );
    assert.equal(info.live?.master, `${base}/live/master.m3u8`);
    assert.equal(info.live?.broadcast, channel.broadcast?.id);
    assert.deepEqual(info.recordings, [], 'nothing recorded while the only broadcast is live');
    // The key served is the one that signed the segments.
    const served = await importChannelKey(info.publicKey);
    assert.equal((await verifyChain([att], served)).ok, true);
  });

  test('master and media playlists while live', async () => {
    const masterUrl = `${base}/live/master.m3u8`;
    const res = await fetch(masterUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), M3U8);
    const age = maxAge(res.headers.get('cache-control'));
    assert.ok(age !== undefined && age >= 1 && age <= channel.settings.segmentDurationS, `max-age ${age}`);
    const master = await res.text();
    assert.match(master, /^#EXTM3U\n/);
    const variants = master.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(variants, ['180p.m3u8', '90p.m3u8']);
    assert.equal((master.match(/#EXT-X-STREAM-INF:/g) ?? []).length, 2);

    for (const v of variants) {
      const url = new URL(v, masterUrl).href;
      assert.equal(url, `${base}/live/${v}`);
      const media = await fetch(url);
      assert.equal(media.status, 200, url);
      assert.equal(media.headers.get('content-type'), M3U8);
      const a = maxAge(media.headers.get('cache-control'));
      assert.ok(a !== undefined && a >= 1 && a <= channel.settings.segmentDurationS, `max-age ${a}`);
      const text = await media.text();
      assert.match(text, /^#EXTM3U\n/);
      assert.doesNotMatch(text, /#EXT-X-ENDLIST/);
      assert.doesNotMatch(text, /#EXT-X-PLAYLIST-TYPE/);
      const uris = segmentUris(text, url);
      assert.ok(
        uris.length >= 1 && uris.length <= channel.settings.playlistWindow,
        `${uris.length} segments`,
      );
      const firstSeq = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)![1]);
      const rendition = v.replace('.m3u8', '');
      assert.equal(uris[0]!.url, `${base}/segments/${rendition}/${firstSeq}.ts`);
      // Every listed segment is served.
      for (const u of uris.filter((x) => !x.gap)) {
        const seg = await fetch(u.url, { method: 'HEAD' });
        assert.equal(seg.status, 200, u.url);
      }
    }
  });

  test('unknown renditions and recordings of a live broadcast are refused', async () => {
    assert.equal((await fetch(`${base}/live/720p.m3u8`)).status, 404);
    assert.equal((await fetch(`${base}/live/180p.m3u`)).status, 404);
    assert.equal((await fetch(`${base}/recordings/20200101-000000/master.m3u8`)).status, 404);
    assert.equal((await fetch(`${base}/recordings/nope/master.m3u8`)).status, 404);
    const live = await fetch(`${base}/recordings/${channel.broadcast!.id}/master.m3u8`);
    assert.equal(live.status, 409, 'a live broadcast has no final recording yet');
  });

  test('a segment: type, immutable caching, length and verified bytes', async () => {
    const res = await fetch(`${base}/segments/180p/1.ts`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'video/mp2t');
    assert.match(res.headers.get('cache-control')!, /immutable/);
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.equal(res.headers.get('content-length'), String(att.byteLength));
    const body = new Uint8Array(await res.arrayBuffer());
    assert.equal(body.length, att.byteLength);
    assert.equal(body[0], 0x47, 'MPEG-TS sync byte');
    assert.deepEqual(body, new Uint8Array(bytes));
    const check = await verifySegment(
      att,
      key,
      { channel: 'test', rendition: '180p', mediaSequence: 1 },
      body,
    );
    assert.deepEqual(check, { ok: true });
    // Every segment we were told about is served and verifies.
    for (const a of published) {
      const r = await fetch(`${base}/segments/${a.rendition}/${a.mediaSequence}.ts`);
      const b = new Uint8Array(await r.arrayBuffer());
      assert.equal((await verifySegment(a, key, a, b)).ok, true, `${a.rendition}/${a.mediaSequence}`);
    }
  });

  test('unknown or malformed segment names → 404', async () => {
    for (const p of [
      '180p/999999.ts',
      '180p/999999.json',
      '720p/1.ts',
      '180p/1.mp4',
      '180p/01x.ts',
      '180p/-1.ts',
    ])
      assert.equal((await fetch(`${base}/segments/${p}`)).status, 404, p);
  });

  test('the attestation JSON parses and verifies', async () => {
    const res = await fetch(`${base}/segments/180p/1.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/json/);
    assert.match(res.headers.get('cache-control')!, /immutable/);
    const parsed = parseAttestation(await res.json());
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.attestation, att);
    assert.deepEqual(
      await verifySegment(
        parsed.attestation,
        key,
        { channel: 'test', rendition: '180p', mediaSequence: 1 },
        bytes,
      ),
      { ok: true },
    );
  });

  test('attestation runs: at most `limit`, in order, chained; bad parameters → 400', async () => {
    const res = await fetch(`${base}/attestations/180p?from=0&limit=3`);
    assert.equal(res.status, 200);
    const run = (await res.json()) as { rendition: string; from: number; attestations: unknown[] };
    assert.equal(run.rendition, '180p');
    assert.equal(run.from, 0);
    assert.ok(run.attestations.length >= 1 && run.attestations.length <= 3, `${run.attestations.length}`);
    const records = run.attestations.map((a) => {
      const p = parseAttestation(a);
      assert.ok(p.ok);
      return p.attestation;
    });
    assert.deepEqual(
      records.map((r) => r.mediaSequence),
      [0, 1, 2].slice(0, records.length),
    );
    assert.deepEqual(await verifyChain(records, key), { ok: true });

    const one = (await (await fetch(`${base}/attestations/90p?from=1&limit=1`)).json()) as {
      attestations: Attestation[];
    };
    assert.equal(one.attestations.length, 1);
    assert.equal(one.attestations[0]!.mediaSequence, 1);
    assert.equal(one.attestations[0]!.rendition, '90p');

    const far = (await (await fetch(`${base}/attestations/180p?from=1000000`)).json()) as {
      attestations: unknown[];
    };
    assert.deepEqual(far.attestations, []);

    for (const q of [
      'from=-1',
      'from=abc',
      'from=1.5',
      'from=0&from=1',
      'limit=0',
      'limit=501',
      'limit=-3',
      'limit=abc',
      'limit=2.5',
      'from=0&limit=',
    ]) {
      const r = await fetch(`${base}/attestations/180p?${q}`);
      assert.equal(r.status, 400, q);
      assert.ok(((await r.json()) as { error: string }).error, q);
    }
  });

  test('byte ranges', async () => {
    const size = bytes.length;
    const url = `${base}/segments/180p/1.ts`;
    const get = (range: string) => fetch(url, { headers: { Range: range } });

    let res = await get('bytes=0-99');
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 0-99/${size}`);
    assert.equal(res.headers.get('content-length'), '100');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes.subarray(0, 100));

    res = await get('bytes=-50');
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes ${size - 50}-${size - 1}/${size}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes.subarray(size - 50));

    res = await get(`bytes=${size - 10}-`);
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes ${size - 10}-${size - 1}/${size}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes.subarray(size - 10));

    res = await get(`bytes=188-${size * 10}`);
    assert.equal(res.status, 206, 'an over-long end is clamped');
    assert.equal(res.headers.get('content-range'), `bytes 188-${size - 1}/${size}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes.subarray(188));

    for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 10}`, 'bytes=-0']) {
      res = await get(range);
      assert.equal(res.status, 416, range);
      assert.equal(res.headers.get('content-range'), `bytes */${size}`, range);
      await res.arrayBuffer();
    }

    // Multi-range and garbage: the whole segment.
    for (const range of ['bytes=0-1,5-6', 'pages=1-2']) {
      res = await get(range);
      assert.equal(res.status, 200, range);
      assert.equal(res.headers.get('content-range'), null);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes, range);
    }
  });

  test('HEAD answers headers without a body', async () => {
    const seg = await raw('HEAD', '/channels/test/segments/180p/1.ts');
    assert.equal(seg.status, 200);
    assert.equal(seg.headers['content-length'], String(bytes.length));
    assert.equal(seg.headers['content-type'], 'video/mp2t');
    assert.equal(seg.body.length, 0);

    const ranged = await raw('HEAD', '/channels/test/segments/180p/1.ts', { Range: 'bytes=0-9' });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers['content-length'], '10');
    assert.equal(ranged.body.length, 0);

    for (const p of [
      '/channels/test/live/180p.m3u8',
      '/channels/test/channel.json',
      '/channels/test/segments/180p/1.json',
    ]) {
      const res = await raw('HEAD', p);
      assert.equal(res.status, 200, p);
      assert.ok(Number(res.headers['content-length']) > 0, p);
      assert.equal(res.body.length, 0, p);
    }
  });

  test('CORS: every answer allows any origin; preflight allows Range', async () => {
    for (const p of [
      '/segments/180p/1.ts',
      '/segments/180p/1.json',
      '/live/master.m3u8',
      '/channel.json',
      '/nope',
    ]) {
      const res = await fetch(`${base}${p}`, { headers: { Origin: 'https://player.example' } });
      assert.equal(res.headers.get('access-control-allow-origin'), '*', p);
      await res.arrayBuffer();
    }
    const seg = await fetch(`${base}/segments/180p/1.ts`, { headers: { Range: 'bytes=0-0' } });
    assert.match(seg.headers.get('access-control-expose-headers')!, /Content-Range/i);
    await seg.arrayBuffer();

    const pre = await raw('OPTIONS', '/channels/test/segments/180p/1.ts', {
      Origin: 'https://player.example',
      'Access-Control-Request-Method': 'GET',
      'Access-Control-Request-Headers': 'range',
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], '*');
    assert.match(String(pre.headers['access-control-allow-headers']), /\brange\b/i);
    assert.match(String(pre.headers['access-control-allow-methods']), /\bGET\b/);
    assert.equal(pre.body.length, 0);
  });

  test('unknown channels → 404', async () => {
    for (const p of [
      '/channels/nope/channel.json',
      '/channels/NOPE/channel.json',
      '/channels/-x/live/master.m3u8',
      '/channels/',
    ]) {
      const res = await raw('GET', p);
      assert.equal(res.status, 404, p);
    }
  });

  test('path traversal attempts are refused and never leak the key', async () => {
    const keyPem = fs.readFileSync(keyFile, 'utf8');
    const keyBody = keyPem.split('\n')[1]!;
    assert.ok(keyBody.length > 20);
    const attempts = [
      '/channels/test/segments/180p/..%2f..%2fchannel-key.pem',
      '/channels/test/segments/180p/..%2F..%2Fchannel-key.pem',
      '/channels/test/../../etc/passwd',
      '/channels/test/segments/180p/../../channel-key.pem',
      '/channels/test/segments/../channel-key.pem/x',
      '/channels/test/segments/180p/%2e%2e/x',
      '/channels/test/segments/180p/%2e%2e/%2e%2e/channel-key.pem',
      '/channels/test/segments/%2e%2e/channel-key.pem',
      '/channels/test/segments/180p/..\\..\\channel-key.pem',
      '/channels/test/segments\\180p\\1.ts',
      '/channels/test/segments/180p/1.ts/extra',
      '/channels/test/segments//180p/1.ts',
      '/channels/test/channel-key.pem',
      '/channels/test/segments/180p/index.ndjson',
      '/channels/test/segments/180p/1.ts%00',
      '/channels/test%2fsegments%2f180p%2f1.ts',
      '/channels/test/live/..%2fchannel-key.pem',
      '/channels/..%2f..%2f..%2fetc%2fpasswd',
    ];
    for (const p of attempts) {
      let res: Awaited<ReturnType<typeof raw>>;
      try {
        res = await raw('GET', p);
      } catch {
        continue; // refused at the HTTP level: fine
      }
      assert.notEqual(res.status, 200, p);
      assert.ok(res.status >= 400 && res.status < 500, `${p}: ${res.status}`);
      const text = res.body.toString('latin1');
      assert.ok(!text.includes('PRIVATE KEY') && !text.includes(keyBody), `${p} leaked the key`);
      assert.ok(!text.includes('root:'), `${p} leaked /etc/passwd`);
    }
  });

  test('methods other than GET/HEAD/OPTIONS → 405', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const res = await raw(method, '/channels/test/segments/180p/1.ts');
      assert.equal(res.status, 405, method);
      assert.match(String(res.headers.allow), /GET/);
    }
    // And the segment is still there.
    assert.equal((await fetch(`${base}/segments/180p/1.ts`, { method: 'HEAD' })).status, 200);
  });

  test('counters: bytes and requests per kind are exact', async () => {
    const before = origin.counters().test!;
    let segmentBytes = 0;
    const full = await fetch(`${base}/segments/180p/1.ts`);
    segmentBytes += (await full.arrayBuffer()).byteLength;
    const part = await fetch(`${base}/segments/180p/1.ts`, { headers: { Range: 'bytes=0-99' } });
    segmentBytes += (await part.arrayBuffer()).byteLength;
    const pl = await fetch(`${base}/live/180p.m3u8`);
    const playlistBytes = (await pl.arrayBuffer()).byteLength;
    const at = await fetch(`${base}/segments/180p/1.json`);
    const attestationBytes = (await at.arrayBuffer()).byteLength;
    const head = await fetch(`${base}/segments/180p/2.ts`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(segmentBytes, bytes.length + 100);

    const now = origin.counters().test!;
    const delta = (k: keyof ChannelCounters) => ({
      bytes: now[k].bytes - before[k].bytes,
      requests: now[k].requests - before[k].requests,
    });
    assert.deepEqual(delta('segment'), { bytes: segmentBytes, requests: 3 });
    assert.deepEqual(delta('playlist'), { bytes: playlistBytes, requests: 1 });
    assert.deepEqual(delta('attestation'), { bytes: attestationBytes, requests: 1 });
    assert.deepEqual(delta('metadata'), { bytes: 0, requests: 0 });
    // counters() is a copy.
    now.segment.bytes = -1;
    assert.notEqual(origin.counters().test!.segment.bytes, -1);
    // /stats reports the same numbers (and is not counted itself).
    const stats = (await (await fetch(`${origin.publicUrl}/stats`)).json()) as {
      channels: Record<string, ChannelCounters>;
    };
    assert.deepEqual(stats.channels.test, origin.counters().test);
  });

  describe('after the broadcast is stopped', () => {
    let info: ChannelJson;

    before(async () => {
      await channel.end();
      info = (await (await fetch(`${base}/channel.json`)).json()) as ChannelJson;
    });

    test('the live media playlists end with ENDLIST', async () => {
      for (const r of ['180p', '90p']) {
        const res = await fetch(`${base}/live/${r}.m3u8`);
        assert.equal(res.status, 200);
        const text = await res.text();
        assert.equal(text.trimEnd().split('\n').at(-1), '#EXT-X-ENDLIST', r);
        assert.doesNotMatch(text, /PLAYLIST-TYPE:VOD/);
      }
    });

    test('channel.json says ended and lists the recording', () => {
      assert.equal(info.status, 'ended');
      assert.equal(info.recordings.length, 1);
      const rec = info.recordings[0]!;
      assert.equal(rec.id, channel.broadcast!.id);
      assert.equal(rec.master, `${base}/recordings/${rec.id}/master.m3u8`);
      assert.ok(Date.parse(rec.endedAt) >= Date.parse(rec.startedAt));
    });

    test('the recording is served as VOD and every segment resolves and verifies', async () => {
      const masterUrl = info.recordings[0]!.master;
      const res = await fetch(masterUrl);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), M3U8);
      const variants = (await res.text()).split('\n').filter((l) => l && !l.startsWith('#'));
      assert.deepEqual(variants, ['180p.m3u8', '90p.m3u8']);
      for (const v of variants) {
        const url = new URL(v, masterUrl).href;
        const media = await fetch(url);
        assert.equal(media.status, 200, url);
        assert.equal(media.headers.get('content-type'), M3U8);
        const text = await media.text();
        assert.match(text, /^#EXT-X-PLAYLIST-TYPE:VOD$/m);
        assert.equal(text.trimEnd().split('\n').at(-1), '#EXT-X-ENDLIST');
        assert.match(text, /^#EXT-X-MEDIA-SEQUENCE:0$/m, 'the recording starts at the first segment');
        const uris = segmentUris(text, url);
        const rendition = v.replace('.m3u8', '');
        assert.ok(uris.length >= 3, `${rendition}: ${uris.length} segments`);
        // The recording covers more than the live window.
        const published180 = published.filter((a) => a.rendition === rendition).length;
        assert.ok(uris.length >= published180);
        const records: Attestation[] = [];
        for (const [i, u] of uris.entries()) {
          assert.equal(u.url, `${base}/segments/${rendition}/${i}.ts`);
          if (u.gap) continue;
          const seg = await fetch(u.url);
          assert.equal(seg.status, 200, u.url);
          const body = new Uint8Array(await seg.arrayBuffer());
          const a = (await (await fetch(u.url.replace(/\.ts$/, '.json'))).json()) as Attestation;
          assert.deepEqual(await verifySegment(a, key, a, body), { ok: true }, u.url);
          records.push(a);
        }
        assert.deepEqual(await verifyChain(records, key), { ok: true }, `${rendition} chain`);
      }
    });
  });
});

describe('origin behind a CDN or reverse proxy (--public-url)', () => {
  test('channel.json advertises the public URL, not the bound address', async () => {
    const channel = tinyChannel({ id: 'behind-cdn' });
    const cdn = new Origin({ publicUrl: 'https://cdn.example.test/tv/' });
    cdn.addChannel(channel);
    const server = await cdn.listen(0);
    try {
      const bound = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const info = (await (await fetch(`${bound}/channels/behind-cdn/channel.json`)).json()) as {
        originUrl: string;
        status: string;
        live: unknown;
      };
      assert.equal(info.originUrl, 'https://cdn.example.test/tv');
      assert.equal(info.status, 'idle');
      assert.equal(info.live, null);
      const offline = await fetch(`${bound}/channels/behind-cdn/live/master.m3u8`);
      assert.equal(offline.status, 404);
      assert.match(((await offline.json()) as { error: string }).error, /offline/);
    } finally {
      await cdn.destroy();
      await channel.destroy();
    }
  });
});
