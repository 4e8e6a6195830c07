/** The HLS parser on the playlists our own origin writes, on hand-written ones, and on malformed input. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { GENESIS_HASH, type Attestation } from '../../protocol/index.ts';
import {
  averageBandwidthBps,
  codecsFor,
  DEFAULT_LADDER,
  masterPlaylist,
  mediaPlaylist,
  peakBandwidthBps,
  type Entry,
} from '../../source/index.ts';
import {
  MAX_PLAYLIST_ENTRIES,
  parseMasterPlaylist,
  parseMediaPlaylist,
  PlaylistError,
} from '../../peer/core/hls.ts';

const LIVE_URL = 'http://127.0.0.1:8080/channels/demo/live/480p.m3u8';
const T0 = Date.UTC(2025, 0, 2, 3, 4, 5, 678);

function segment(seq: number, disc: number, durationMs = 2000, publishedAtMs = T0 + seq * 2000): Entry {
  const attestation: Attestation = {
    v: 1,
    channel: 'demo',
    rendition: '480p',
    mediaSequence: seq,
    discontinuitySequence: disc,
    byteLength: 1000,
    durationMs,
    sha256: 'a'.repeat(64),
    prevHash: GENESIS_HASH,
    publishedAtMs,
    signature: 'A'.repeat(86),
  };
  return { kind: 'segment', attestation };
}

function gap(seq: number, disc: number, durationMs = 2000, publishedAtMs = T0 + seq * 2000): Entry {
  return { kind: 'gap', mediaSequence: seq, discontinuitySequence: disc, durationMs, publishedAtMs };
}

const seqOf = (e: Entry) => (e.kind === 'segment' ? e.attestation.mediaSequence : e.mediaSequence);
const discOf = (e: Entry) =>
  e.kind === 'segment' ? e.attestation.discontinuitySequence : e.discontinuitySequence;
const durOf = (e: Entry) => (e.kind === 'segment' ? e.attestation.durationMs : e.durationMs);
const pubOf = (e: Entry) => (e.kind === 'segment' ? e.attestation.publishedAtMs : e.publishedAtMs);

function live(
  entries: Entry[],
  opts: { ended?: boolean; vod?: boolean; uri?: (seq: number) => string } = {},
) {
  return mediaPlaylist({
    entries,
    segmentDurationS: 2,
    uri: opts.uri ?? ((seq) => `../segments/480p/${seq}.ts`),
    ended: opts.ended ?? false,
    vod: opts.vod ?? false,
  });
}

/** Checks a parsed playlist against the entries it was rendered from. */
function assertMatches(parsed: ReturnType<typeof parseMediaPlaylist>, entries: Entry[], base: string) {
  assert.equal(parsed.segments.length, entries.length);
  if (entries[0]) {
    assert.equal(parsed.mediaSequence, seqOf(entries[0]));
    assert.equal(parsed.discontinuitySequence, discOf(entries[0]));
  }
  parsed.segments.forEach((s, i) => {
    const e = entries[i]!;
    assert.equal(s.mediaSequence, seqOf(e), `segment ${i} sequence`);
    assert.equal(s.discontinuitySequence, discOf(e), `segment ${i} discontinuity`);
    assert.equal(s.durationS, durOf(e) / 1000);
    assert.equal(s.gap, e.kind === 'gap');
    assert.equal(s.programDateTimeMs, pubOf(e) - durOf(e));
    assert.equal(s.url, new URL(`../segments/480p/${seqOf(e)}.ts`, base).href);
  });
}

describe('parseMediaPlaylist on our origin’s playlists', () => {
  test('a live sliding window', () => {
    const entries = [40, 41, 42, 43, 44].map((s) => segment(s, 3));
    const p = parseMediaPlaylist(live(entries), LIVE_URL);
    assert.equal(p.mediaSequence, 40);
    assert.equal(p.discontinuitySequence, 3);
    assert.equal(p.targetDurationS, 2);
    assert.equal(p.ended, false);
    assert.equal(p.vod, false);
    assert.equal(p.segments[2]!.url, 'http://127.0.0.1:8080/channels/demo/segments/480p/42.ts');
    assert.equal(p.segments[0]!.programDateTimeMs, T0 + 40 * 2000 - 2000);
    assertMatches(p, entries, LIVE_URL);
  });

  test('gaps and discontinuities', () => {
    const entries = [
      segment(10, 0),
      segment(11, 0, 1500),
      gap(12, 1),
      gap(13, 1),
      segment(14, 1, 2345),
      segment(15, 2),
      gap(16, 3),
      segment(17, 4),
    ];
    const text = live(entries);
    assert.match(text, /EXT-X-GAP/);
    assert.match(text, /EXT-X-VERSION:8/);
    const p = parseMediaPlaylist(text, LIVE_URL);
    assertMatches(p, entries, LIVE_URL);
    assert.deepEqual(
      p.segments.map((s) => [s.mediaSequence, s.discontinuitySequence, s.gap]),
      [
        [10, 0, false],
        [11, 0, false],
        [12, 1, true],
        [13, 1, true],
        [14, 1, false],
        [15, 2, false],
        [16, 3, true],
        [17, 4, false],
      ],
    );
  });

  test('an ended broadcast and a VOD recording', () => {
    const entries = [0, 1, 2].map((s) => segment(s, 0));
    const ended = parseMediaPlaylist(live(entries, { ended: true }), LIVE_URL);
    assert.equal(ended.ended, true);
    assert.equal(ended.vod, false);
    const recUrl = 'https://cdn.example.test/channels/demo/recordings/b1/480p.m3u8';
    const rec = parseMediaPlaylist(
      live(entries, { ended: true, vod: true, uri: (s) => `../../segments/480p/${s}.ts` }),
      recUrl,
    );
    assert.equal(rec.ended, true);
    assert.equal(rec.vod, true);
    assert.equal(rec.segments[1]!.url, 'https://cdn.example.test/channels/demo/segments/480p/1.ts');
  });

  test('an empty recording', () => {
    const p = parseMediaPlaylist(live([], { ended: true, vod: true }), LIVE_URL);
    assert.deepEqual(p, {
      mediaSequence: 0,
      discontinuitySequence: 0,
      targetDurationS: 2,
      ended: true,
      vod: true,
      segments: [],
    });
  });

  test('random windows round-trip (discontinuity counting matches what the origin rendered)', () => {
    let rnd = 12345;
    const next = () => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 200; round++) {
      const entries: Entry[] = [];
      let seq = Math.floor(next() * 1e9);
      let disc = Math.floor(next() * 50);
      const n = Math.floor(next() * 30);
      for (let i = 0; i < n; i++) {
        if (next() < 0.15) disc++; // one change at a time: each is one EXT-X-DISCONTINUITY
        const dur = 500 + Math.floor(next() * 5000);
        entries.push(next() < 0.1 ? gap(seq, disc, dur) : segment(seq, disc, dur));
        seq++;
      }
      assertMatches(parseMediaPlaylist(live(entries), LIVE_URL), entries, LIVE_URL);
    }
  });
});

describe('parseMediaPlaylist per the spec', () => {
  test('each EXT-X-DISCONTINUITY increments the sequence of the following segments', () => {
    const text = [
      '#EXTM3U',
      '#EXT-X-TARGETDURATION:6',
      '#EXT-X-MEDIA-SEQUENCE:100',
      '#EXT-X-DISCONTINUITY-SEQUENCE:7',
      '#EXT-X-DISCONTINUITY',
      '#EXTINF:6,',
      'a.ts',
      '#EXTINF:6,title, with comma',
      'b.ts',
      '#EXT-X-DISCONTINUITY',
      '#EXT-X-DISCONTINUITY',
      '#EXTINF:5.5,',
      'c.ts',
      '#EXT-X-DISCONTINUITY',
      '#EXT-X-PROGRAM-DATE-TIME:2025-03-01T10:00:00.5+01:00',
      '#EXTINF:4',
      'https://other.test/d.ts?x=1',
    ].join('\n');
    const p = parseMediaPlaylist(text, 'http://h.test/a/b/list.m3u8');
    assert.deepEqual(
      p.segments.map((s) => [s.mediaSequence, s.discontinuitySequence, s.durationS, s.url]),
      [
        [100, 8, 6, 'http://h.test/a/b/a.ts'],
        [101, 8, 6, 'http://h.test/a/b/b.ts'],
        [102, 10, 5.5, 'http://h.test/a/b/c.ts'],
        [103, 11, 4, 'https://other.test/d.ts?x=1'],
      ],
    );
    assert.equal(p.discontinuitySequence, 7);
    assert.equal(p.segments[3]!.programDateTimeMs, Date.UTC(2025, 2, 1, 9, 0, 0, 500));
    assert.equal(p.segments[2]!.programDateTimeMs, null);
  });

  test('defaults, unknown tags, comments, CRLF, blank lines and a BOM are tolerated', () => {
    const text =
      '\uFEFF#EXTM3U\r\n#EXT-X-TARGETDURATION:2\r\n# a comment\r\n\r\n#EXT-X-DATERANGE:ID="x",START-DATE="2025-01-01T00:00:00Z"\r\n' +
      '#EXT-X-FUTURE-TAG\r\n#EXT-X-KEY:METHOD=NONE\r\n#EXTINF:2.000,\r\n  0.ts  \r\n#EXT-X-PLAYLIST-TYPE:EVENT\r\n';
    const p = parseMediaPlaylist(text, 'http://h.test/x/p.m3u8');
    assert.equal(p.mediaSequence, 0);
    assert.equal(p.discontinuitySequence, 0);
    assert.equal(p.vod, false);
    assert.equal(p.segments.length, 1);
    assert.equal(p.segments[0]!.url, 'http://h.test/x/0.ts');
  });

  test('accepts exactly the maximum number of segments', () => {
    const lines = ['#EXTM3U', '#EXT-X-TARGETDURATION:1'];
    for (let i = 0; i < MAX_PLAYLIST_ENTRIES; i++) lines.push('#EXTINF:1,', `${i}.ts`);
    assert.equal(parseMediaPlaylist(lines.join('\n'), LIVE_URL).segments.length, MAX_PLAYLIST_ENTRIES);
  });
});

function assertRefused(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PlaylistError, `expected a PlaylistError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'one-line message');
    return true;
  });
}

const HEAD = '#EXTM3U\n#EXT-X-TARGETDURATION:2\n';

describe('parseMediaPlaylist refuses malformed playlists', () => {
  const cases: [string, string, RegExp][] = [
    ['empty', '', /no #EXTM3U/],
    ['no header', '#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n0.ts\n', /no #EXTM3U/],
    ['header not first', '\n#EXTM3U\n#EXT-X-TARGETDURATION:2\n', /no #EXTM3U/],
    ['HTML', '<html><body>502 Bad Gateway</body></html>', /no #EXTM3U/],
    ['EXTINF at the end', `${HEAD}#EXTINF:2,\n0.ts\n#EXTINF:2,\n`, /line 5: #EXTINF without a segment URI/],
    ['EXTINF after EXTINF', `${HEAD}#EXTINF:2,\n#EXTINF:2,\n1.ts\n`, /line 3: #EXTINF without a segment URI/],
    ['URI without EXTINF', `${HEAD}0.ts\n`, /without #EXTINF/],
    ['non-numeric duration', `${HEAD}#EXTINF:abc,\n0.ts\n`, /EXTINF duration is not/],
    ['negative duration', `${HEAD}#EXTINF:-2,\n0.ts\n`, /EXTINF duration is not/],
    ['missing duration', `${HEAD}#EXTINF\n0.ts\n`, /EXTINF duration is not/],
    ['absurd duration', `${HEAD}#EXTINF:1000000,\n0.ts\n`, /absurd/],
    [
      'non-numeric media sequence',
      `${HEAD}#EXT-X-MEDIA-SEQUENCE:x\n`,
      /MEDIA-SEQUENCE is not a decimal integer/,
    ],
    [
      'negative media sequence',
      `${HEAD}#EXT-X-MEDIA-SEQUENCE:-1\n`,
      /MEDIA-SEQUENCE is not a decimal integer/,
    ],
    ['huge media sequence', `${HEAD}#EXT-X-MEDIA-SEQUENCE:99999999999999999\n`, /too large/],
    ['non-numeric target', '#EXTM3U\n#EXT-X-TARGETDURATION:2.5\n', /TARGETDURATION is not a decimal integer/],
    ['no target duration', '#EXTM3U\n#EXTINF:2,\n0.ts\n', /no #EXT-X-TARGETDURATION/],
    [
      'media sequence after a segment',
      `${HEAD}#EXTINF:2,\n0.ts\n#EXT-X-MEDIA-SEQUENCE:5\n`,
      /after the first segment/,
    ],
    ['media sequence twice', `${HEAD}#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-MEDIA-SEQUENCE:1\n`, /twice/],
    [
      'disc sequence after a discontinuity',
      `${HEAD}#EXT-X-DISCONTINUITY\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n`,
      /after EXT-X-DISCONTINUITY/,
    ],
    ['bad date', `${HEAD}#EXT-X-PROGRAM-DATE-TIME:yesterday\n#EXTINF:2,\n0.ts\n`, /PROGRAM-DATE-TIME/],
    [
      'impossible date',
      `${HEAD}#EXT-X-PROGRAM-DATE-TIME:2025-02-30T00:00:00Z\n#EXTINF:2,\n0.ts\n`,
      /PROGRAM-DATE-TIME/,
    ],
    ['bad playlist type', `${HEAD}#EXT-X-PLAYLIST-TYPE:LIVE\n`, /PLAYLIST-TYPE/],
    [
      'a master playlist',
      '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n480p.m3u8\n',
      /master playlist where a media/,
    ],
    ['byte ranges', `${HEAD}#EXT-X-BYTERANGE:100@0\n#EXTINF:2,\n0.ts\n`, /unsupported EXT-X-BYTERANGE/],
    ['encryption', `${HEAD}#EXT-X-KEY:METHOD=AES-128,URI="k"\n#EXTINF:2,\n0.ts\n`, /encrypted/],
    ['a javascript: URI', `${HEAD}#EXTINF:2,\njavascript:alert(1)\n`, /not http/],
    ['a file: URI', `${HEAD}#EXTINF:2,\nfile:///etc/passwd\n`, /not http/],
    ['two headers', `${HEAD}#EXTM3U\n`, /twice/],
  ];
  for (const [name, text, pattern] of cases)
    test(name, () => assertRefused(() => parseMediaPlaylist(text, LIVE_URL), pattern));

  test('too many segments', () => {
    const lines = ['#EXTM3U', '#EXT-X-TARGETDURATION:1'];
    for (let i = 0; i <= MAX_PLAYLIST_ENTRIES; i++) lines.push('#EXTINF:1,', `${i}.ts`);
    assertRefused(() => parseMediaPlaylist(lines.join('\n'), LIVE_URL), /more than 10000 segments/);
  });

  test('too large', () => {
    const text = `${HEAD}${'# padding\n'.repeat(110_000)}`;
    assertRefused(() => parseMediaPlaylist(text, LIVE_URL), /too large/);
  });

  test('an invalid playlist URL', () => {
    assertRefused(() => parseMediaPlaylist(live([segment(1, 0)]), 'not a url'), /invalid playlist URL/);
  });
});

describe('parseMasterPlaylist', () => {
  test('our origin’s master playlist', () => {
    const url = 'http://127.0.0.1:8080/channels/demo/live/master.m3u8';
    for (const hasAudio of [true, false]) {
      const text = masterPlaylist({ ladder: DEFAULT_LADDER, fps: 29.97, hasAudio, uri: (r) => `${r}.m3u8` });
      const m = parseMasterPlaylist(text, url);
      assert.deepEqual(
        m.variants,
        [...DEFAULT_LADDER]
          .sort((a, b) => peakBandwidthBps(b, hasAudio) - peakBandwidthBps(a, hasAudio))
          .map((r) => ({
            name: r.name,
            url: `http://127.0.0.1:8080/channels/demo/live/${r.name}.m3u8`,
            bandwidthBps: peakBandwidthBps(r, hasAudio),
            averageBandwidthBps: averageBandwidthBps(r, hasAudio),
            width: r.width,
            height: r.height,
            codecs: codecsFor(r, 29.97, hasAudio),
            frameRate: 29.97,
          })),
      );
    }
  });

  test('minimal variants, other tags, absolute URIs', () => {
    const text = [
      '#EXTM3U',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",URI="audio/en.m3u8"',
      '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1000,URI="iframes.m3u8"',
      '#EXT-X-STREAM-INF:BANDWIDTH=500000,AUDIO="aud",HDCP-LEVEL=NONE',
      '# comment between',
      'low/index.m3u8?token=abc',
      '#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.4d401f,mp4a.40.2",RESOLUTION=640x360',
      'https://cdn.test/high.m3u8',
    ].join('\n');
    const m = parseMasterPlaylist(text, 'http://h.test/live/master.m3u8');
    assert.deepEqual(m.variants, [
      { name: 'index', url: 'http://h.test/live/low/index.m3u8?token=abc', bandwidthBps: 500000 },
      {
        name: 'high',
        url: 'https://cdn.test/high.m3u8',
        bandwidthBps: 900000,
        codecs: 'avc1.4d401f,mp4a.40.2',
        width: 640,
        height: 360,
      },
    ]);
  });

  const cases: [string, string, RegExp][] = [
    ['empty', '', /no #EXTM3U/],
    ['a media playlist', live([segment(1, 0)]), /media playlist where a master/],
    ['no variant', '#EXTM3U\n#EXT-X-VERSION:6\n', /no variant/],
    ['STREAM-INF without URI', '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n', /without a URI/],
    [
      'STREAM-INF twice',
      '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-STREAM-INF:BANDWIDTH=2\na.m3u8\n',
      /line 2: #EXT-X-STREAM-INF without a URI/,
    ],
    ['URI without STREAM-INF', '#EXTM3U\na.m3u8\n', /without #EXT-X-STREAM-INF/],
    ['no BANDWIDTH', '#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1\na.m3u8\n', /without BANDWIDTH/],
    ['non-numeric BANDWIDTH', '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=lots\na.m3u8\n', /BANDWIDTH is not/],
    ['bad RESOLUTION', '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=big\na.m3u8\n', /RESOLUTION/],
    ['bad FRAME-RATE', '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,FRAME-RATE=fast\na.m3u8\n', /FRAME-RATE/],
    ['unquoted CODECS', '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=avc1\na.m3u8\n', /quoted/],
    [
      'unterminated quote',
      '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="avc1\na.m3u8\n',
      /malformed attribute list/,
    ],
    ['duplicate attribute', '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,BANDWIDTH=2\na.m3u8\n', /twice/],
    ['trailing comma', '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,\na.m3u8\n', /trailing comma/],
    ['a data: URI', '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\ndata:text/plain,x\n', /not http/],
  ];
  for (const [name, text, pattern] of cases)
    test(`refuses: ${name}`, () =>
      assertRefused(() => parseMasterPlaylist(text, 'http://h.test/m.m3u8'), pattern));
});
