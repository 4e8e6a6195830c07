import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  averageBandwidthBps,
  buildFfmpegPlan,
  channelSettings,
  codecsFor,
  ConfigError,
  DEFAULT_CHANNEL,
  DEFAULT_LADDER,
  h264Level,
  masterPlaylist,
  mediaPlaylist,
  parseLadder,
  parseRange,
  peakBandwidthBps,
  planToArgs,
  type Entry,
  type Rendition,
} from '../../source/index.ts';

const r = (name: string, width: number, height: number, videoKbps: number, audioKbps = 96): Rendition => ({
  name,
  width,
  height,
  videoKbps,
  audioKbps,
});

describe('channelSettings', () => {
  test('defaults', () => {
    const s = channelSettings('news');
    assert.equal(s.id, 'news');
    assert.equal(s.title, DEFAULT_CHANNEL.title);
    assert.equal(s.segmentDurationS, 2);
    assert.equal(s.fps, 30);
    assert.equal(s.playlistWindow, 6);
    assert.equal(s.x264Preset, 'veryfast');
    assert.deepEqual(s.ladder, DEFAULT_LADDER);
  });

  test('caller settings override the defaults, the rest is kept', () => {
    const ladder = [r('a', 320, 180, 300)];
    const s = channelSettings('c1', { title: 'Hello', fps: 25, ladder, x264Preset: 'ultrafast' });
    assert.equal(s.title, 'Hello');
    assert.equal(s.fps, 25);
    assert.deepEqual(s.ladder, ladder);
    assert.equal(s.x264Preset, 'ultrafast');
    assert.equal(s.segmentDurationS, DEFAULT_CHANNEL.segmentDurationS);
    assert.equal(s.playlistWindow, DEFAULT_CHANNEL.playlistWindow);
    // Edge values that are allowed.
    assert.doesNotThrow(() => channelSettings('c', { segmentDurationS: 1, fps: 1, playlistWindow: 3 }));
    assert.doesNotThrow(() => channelSettings('c', { segmentDurationS: 10, fps: 60, playlistWindow: 60 }));
    assert.doesNotThrow(() => channelSettings('a'.repeat(64), { title: 't'.repeat(200) }));
  });

  const rejects = (what: string, f: () => unknown, message?: RegExp): void =>
    assert.throws(
      f,
      (err: unknown) => err instanceof ConfigError && (!message || message.test(err.message)),
      what,
    );

  test('rejects bad channel ids', () => {
    for (const id of ['', 'News', '-news', '_x', 'a b', 'a/b', '..', 'a'.repeat(65)])
      rejects(JSON.stringify(id), () => channelSettings(id), /channel id/);
  });

  test('rejects bad titles', () => {
    rejects('empty', () => channelSettings('c', { title: '' }), /title/);
    rejects('too long', () => channelSettings('c', { title: 't'.repeat(201) }), /title/);
  });

  test('rejects segment durations 0, 11 and 1.5', () => {
    for (const segmentDurationS of [0, 11, 1.5, -2, NaN])
      rejects(String(segmentDurationS), () => channelSettings('c', { segmentDurationS }), /segment duration/);
  });

  test('rejects frame rates outside 1..60 or fractional', () => {
    for (const fps of [0, 61, 29.97, -30, Infinity])
      rejects(String(fps), () => channelSettings('c', { fps }), /frame rate/);
  });

  test('rejects playlist windows outside 3..60', () => {
    for (const playlistWindow of [0, 2, 61, 4.5])
      rejects(String(playlistWindow), () => channelSettings('c', { playlistWindow }), /playlist window/);
  });

  test('rejects unknown x264 presets', () => {
    for (const p of ['placebo', 'VERYFAST', ''])
      rejects(p, () => channelSettings('c', { x264Preset: p as 'fast' }), /preset/);
  });

  test('rejects bad ladders', () => {
    const ok = r('ok', 640, 360, 600);
    const cases: [string, Rendition[], RegExp][] = [
      ['empty', [], /at least one/],
      ['duplicate names', [ok, { ...ok, width: 320, height: 180 }], /twice/],
      ['odd width', [r('a', 641, 360, 600)], /even/],
      ['odd height', [r('a', 640, 361, 600)], /even/],
      ['width too small', [r('a', 14, 360, 600)], /width/],
      ['width too large', [r('a', 3842, 2160, 600)], /width/],
      ['height too small', [r('a', 640, 14, 600)], /height/],
      ['height too large', [r('a', 3840, 2162, 600)], /height/],
      ['fractional width', [r('a', 640.5, 360, 600)], /width/],
      ['video bitrate too low', [r('a', 640, 360, 49)], /video bitrate/],
      ['video bitrate too high', [r('a', 640, 360, 50_001)], /video bitrate/],
      ['audio bitrate too low', [r('a', 640, 360, 600, 15)], /audio bitrate/],
      ['audio bitrate too high', [r('a', 640, 360, 600, 513)], /audio bitrate/],
      ['bad name', [r('720P', 640, 360, 600)], /rendition name/],
      ['traversal name', [r('../x', 640, 360, 600)], /rendition name/],
      ['9 renditions', Array.from({ length: 9 }, (_, i) => r(`r${i}`, 320, 180, 300)), /at most 8/],
    ];
    for (const [what, ladder, message] of cases)
      rejects(what, () => channelSettings('c', { ladder }), message);
    // Limits that are allowed.
    assert.doesNotThrow(() =>
      channelSettings('c', { ladder: Array.from({ length: 8 }, (_, i) => r(`r${i}`, 320, 180, 300)) }),
    );
    assert.doesNotThrow(() =>
      channelSettings('c', { ladder: [r('a', 16, 16, 50, 16), r('b', 3840, 2160, 50_000, 512)] }),
    );
  });
});

describe('parseLadder', () => {
  test('parses name:WxH:video[:audio] lists, audio defaults to 96', () => {
    assert.deepEqual(parseLadder('720p:1280x720:2500,360p:640x360:600:64'), [
      r('720p', 1280, 720, 2500, 96),
      r('360p', 640, 360, 600, 64),
    ]);
    assert.deepEqual(parseLadder(' 90p:160x90:100:32 '), [r('90p', 160, 90, 100, 32)]);
    assert.deepEqual(parseLadder('a:320x180:300 , b:160x90:100'), [
      r('a', 320, 180, 300),
      r('b', 160, 90, 100),
    ]);
  });

  test('rejects malformed specs with a ConfigError', () => {
    const bad = [
      '',
      '720p',
      '720p:1280x720',
      '720p:1280:2500',
      '720p:1280x720:2500:',
      '720p:1280x720:2500:96:1',
      '720P:1280x720:2500',
      '-a:1280x720:2500',
      '720p:1280X720:2500',
      '720p:1280x720:2.5',
      '720p:-1280x720:2500',
      '720p:1280x720:2500,',
      ',720p:1280x720:2500',
      '720p:1280x720:2500;360p:640x360:600',
    ];
    for (const spec of bad) assert.throws(() => parseLadder(spec), ConfigError, JSON.stringify(spec));
  });

  test('runs the ladder validation (odd size, bitrates, duplicates, audio 0, too many)', () => {
    const bad = [
      'a:641x360:600',
      'a:640x360:10',
      'a:640x360:600:0',
      'a:640x360:600,a:320x180:300',
      `${'n'.repeat(33)}:640x360:600`,
      Array.from({ length: 9 }, (_, i) => `r${i}:320x180:300`).join(','),
    ];
    for (const spec of bad) assert.throws(() => parseLadder(spec), ConfigError, spec);
  });
});

describe('H.264 levels and codecs', () => {
  test('codecsFor 1280x720@30 is Main 3.1 + AAC-LC', () => {
    assert.equal(codecsFor(r('720p', 1280, 720, 2500), 30, true), 'avc1.4d401f,mp4a.40.2');
    assert.equal(codecsFor(r('720p', 1280, 720, 2500), 30, false), 'avc1.4d401f');
  });

  test('levels by macroblock rate', () => {
    const cases: [number, number, number, string, string][] = [
      [640, 360, 30, '3.0', '1e'],
      [854, 480, 30, '3.1', '1f'],
      [854, 480, 25, '3.0', '1e'],
      [1280, 720, 30, '3.1', '1f'],
      [1280, 720, 60, '3.2', '20'],
      [1920, 1080, 30, '4.0', '28'],
      [1920, 1080, 60, '4.2', '2a'],
      [3840, 2160, 25, '5.1', '33'],
      [1280, 720, 50, '3.2', '20'],
      [3840, 2160, 30, '5.1', '33'],
    ];
    for (const [width, height, fps, level, hex] of cases)
      assert.deepEqual(h264Level({ width, height }, fps), { level, hex }, `${width}x${height}@${fps}`);
  });

  test('2160p60 (allowed by the settings) needs level 5.2', () => {
    assert.deepEqual(h264Level({ width: 3840, height: 2160 }, 60), { level: '5.2', hex: '34' });
  });

  test('low frame rates still respect the level frame-size limit (MaxFS)', () => {
    assert.deepEqual(h264Level({ width: 1920, height: 1080 }, 15), { level: '4.0', hex: '28' });
    assert.deepEqual(h264Level({ width: 1280, height: 720 }, 5), { level: '3.1', hex: '1f' });
    assert.deepEqual(h264Level({ width: 2560, height: 1440 }, 30), { level: '5.0', hex: '32' });
  });

  test('bandwidths include audio only when there is audio', () => {
    const hd = r('720p', 1280, 720, 2500, 128);
    assert.equal(peakBandwidthBps(hd, true), Math.round((2500 * 1.1 + 128) * 1000 * 1.1));
    assert.equal(peakBandwidthBps(hd, false), Math.round(2500 * 1.1 * 1000 * 1.1));
    assert.equal(averageBandwidthBps(hd, true), Math.round((2500 + 128) * 1000 * 1.08));
    assert.ok(averageBandwidthBps(hd, true) < peakBandwidthBps(hd, true));
  });
});

describe('ffmpeg plan', () => {
  const workDir = path.join('/tmp', 'peertv-work');
  const settings = channelSettings('c', { fps: 30, segmentDurationS: 2 });
  const argsFor = (input: Parameters<typeof buildFfmpegPlan>[1], hasAudio = true, s = settings) =>
    planToArgs(buildFfmpegPlan(s, input, { workDir, hasAudio }));
  /** Value following `flag` (asserts it is present exactly once). */
  const valueOf = (args: string[], flag: string): string => {
    const i = args.indexOf(flag);
    assert.ok(i >= 0, `${flag} missing`);
    assert.equal(args.lastIndexOf(flag), i, `${flag} repeated`);
    return args[i + 1]!;
  };
  const valuesOf = (args: string[], flag: string): string[] =>
    args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

  test('keyframes: GOP = fps × segment, fixed, no scene cuts, forced at segment boundaries', () => {
    for (const [fps, seg] of [
      [30, 2],
      [25, 4],
      [15, 1],
    ] as const) {
      const s = channelSettings('c', { fps, segmentDurationS: seg });
      const args = argsFor({ kind: 'testpattern' }, true, s);
      assert.equal(valueOf(args, '-g'), String(fps * seg));
      assert.equal(valueOf(args, '-keyint_min'), String(fps * seg));
      assert.equal(valueOf(args, '-sc_threshold'), '0');
      assert.equal(valueOf(args, '-force_key_frames'), `expr:gte(t,n_forced*${seg})`);
      assert.equal(valueOf(args, '-hls_time'), String(seg));
      assert.match(valueOf(args, '-filter_complex'), new RegExp(`fps=${fps}`));
    }
  });

  test('one bitrate, maxrate, bufsize and level per rendition', () => {
    const args = argsFor({ kind: 'testpattern' });
    const ladder = settings.ladder;
    assert.equal(args.filter((a) => a.startsWith('-b:v:')).length, ladder.length);
    ladder.forEach((rend, i) => {
      assert.equal(valueOf(args, `-b:v:${i}`), `${rend.videoKbps}k`);
      assert.equal(valueOf(args, `-maxrate:v:${i}`), `${Math.round(rend.videoKbps * 1.1)}k`);
      assert.equal(valueOf(args, `-bufsize:v:${i}`), `${rend.videoKbps * 2}k`);
      assert.equal(valueOf(args, `-level:v:${i}`), h264Level(rend, 30).level);
      assert.equal(valueOf(args, `-b:a:${i}`), `${rend.audioKbps}k`);
    });
    assert.equal(valueOf(args, '-c:v'), 'libx264');
    assert.equal(valueOf(args, '-preset'), settings.x264Preset);
    assert.equal(valueOf(args, '-profile:v'), 'main');
  });

  test('HLS output: var_stream_map names, temp files, numbering and paths', () => {
    const args = argsFor({ kind: 'testpattern' });
    assert.equal(valueOf(args, '-var_stream_map'), 'v:0,a:0,name:720p v:1,a:1,name:480p v:2,a:2,name:360p');
    assert.match(valueOf(args, '-hls_flags'), /^temp_file(\+|$)/);
    assert.equal(args[args.lastIndexOf('-f') + 1], 'hls');
    assert.ok(args.lastIndexOf('-f') > args.indexOf('-filter_complex'), '-f hls is an output option');
    assert.equal(valueOf(args, '-hls_segment_type'), 'mpegts');
    assert.equal(valueOf(args, '-start_number'), '0');
    assert.equal(valueOf(args, '-hls_segment_filename'), path.join(workDir, '%v', '%d.ts'));
    assert.equal(args.at(-1), path.join(workDir, '%v', 'index.m3u8'));
  });

  test('filter graph: one split branch and one scaled output per rendition', () => {
    const plan = buildFfmpegPlan(settings, { kind: 'testpattern' }, { workDir, hasAudio: true });
    const chains = plan.complexFilter.split(';');
    assert.equal(chains.length, 1 + settings.ladder.length);
    assert.match(chains[0]!, /split=3\[s0\]\[s1\]\[s2\]$/);
    settings.ladder.forEach((rend, i) => {
      assert.ok(chains[i + 1]!.startsWith(`[s${i}]scale=${rend.width}:${rend.height}`), chains[i + 1]);
      assert.ok(chains[i + 1]!.endsWith(`[v${i}]`));
    });
    assert.deepEqual(valuesOf(planToArgs(plan), '-map'), ['[v0]', '1:a', '[v1]', '1:a', '[v2]', '1:a']);
  });

  test('testpattern: lavfi sources at the largest rendition size, paced with -re', () => {
    const plan = buildFfmpegPlan(
      channelSettings('c', { ladder: [r('s', 320, 180, 300), r('l', 854, 480, 900)], fps: 15 }),
      { kind: 'testpattern' },
      { workDir, hasAudio: true },
    );
    assert.equal(plan.inputs.length, 2);
    assert.equal(plan.inputs[0]!.source, 'testsrc2=size=854x480:rate=15');
    assert.deepEqual(plan.inputs[0]!.options, ['-re', '-f', 'lavfi']);
    assert.match(plan.inputs[1]!.source, /^sine=/);
    const args = planToArgs(plan);
    assert.deepEqual(args.slice(0, 5), ['-re', '-f', 'lavfi', '-i', plan.inputs[0]!.source]);
    assert.ok(!args.includes('-stream_loop'));
    assert.equal(plan.hasAudio, true);
  });

  test('no audio: no audio maps, bitrates, codec or stream map entries', () => {
    for (const input of [
      { kind: 'testpattern' } as const,
      { kind: 'file', path: '/x.mp4', loop: false } as const,
      { kind: 'rtmp', streamKey: 'abcdefgh' } as const,
    ]) {
      const plan = buildFfmpegPlan(settings, input, { workDir, hasAudio: false });
      const args = planToArgs(plan);
      assert.equal(plan.hasAudio, false);
      assert.deepEqual(valuesOf(args, '-map'), ['[v0]', '[v1]', '[v2]'], input.kind);
      assert.ok(
        !args.some((a) => a.startsWith('-b:a') || a === '-c:a' || a === '-ar' || a === '-ac'),
        input.kind,
      );
      assert.equal(valueOf(args, '-var_stream_map'), 'v:0,name:720p v:1,name:480p v:2,name:360p');
    }
  });

  test('file input: -stream_loop -1 only when looped, before -i', () => {
    const looped = argsFor({ kind: 'file', path: '/media/in.mp4', loop: true });
    const once = argsFor({ kind: 'file', path: '/media/in.mp4', loop: false });
    assert.deepEqual(looped.slice(0, 5), ['-re', '-stream_loop', '-1', '-i', '/media/in.mp4']);
    assert.deepEqual(once.slice(0, 3), ['-re', '-i', '/media/in.mp4']);
    assert.ok(!once.includes('-stream_loop'));
    assert.deepEqual(valuesOf(looped, '-map'), ['[v0]', '0:a:0', '[v1]', '0:a:0', '[v2]', '0:a:0']);
    assert.ok(valueOf(looped, '-filter_complex').startsWith('[0:v:0]fps=30,split=3'));
    assert.equal(valuesOf(looped, '-i').length, 1);
  });

  test('rtmp input: FLV on stdin, not re-paced, not looped', () => {
    const plan = buildFfmpegPlan(
      settings,
      { kind: 'rtmp', streamKey: 'secret-key-1' },
      { workDir, hasAudio: true },
    );
    assert.deepEqual(plan.inputs, [{ source: 'pipe:0', options: ['-f', 'flv'] }]);
    const args = planToArgs(plan);
    assert.deepEqual(args.slice(0, 4), ['-f', 'flv', '-i', 'pipe:0']);
    assert.ok(!args.includes('-re'));
    assert.ok(!args.includes('-stream_loop'));
    assert.ok(!args.join(' ').includes('secret-key-1'), 'the stream key never reaches the command line');
    assert.deepEqual(valuesOf(args, '-map'), ['[v0]', '0:a:0', '[v1]', '0:a:0', '[v2]', '0:a:0']);
  });
});

describe('master playlist', () => {
  const ladder = [DEFAULT_LADDER[2]!, DEFAULT_LADDER[0]!, DEFAULT_LADDER[1]!]; // shuffled
  const parse = (text: string) => {
    const lines = text.trimEnd().split('\n');
    const variants: { attrs: Record<string, string>; uri: string }[] = [];
    lines.forEach((line, i) => {
      const m = /^#EXT-X-STREAM-INF:(.*)$/.exec(line);
      if (!m) return;
      const attrs: Record<string, string> = {};
      for (const [, k, v] of m[1]!.matchAll(/([A-Z-]+)=("[^"]*"|[^,]*)/g))
        attrs[k!] = v!.replace(/^"|"$/g, '');
      variants.push({ attrs, uri: lines[i + 1]! });
    });
    return { lines, variants };
  };

  test('one variant per rendition with all attributes, highest bitrate first', () => {
    const text = masterPlaylist({ ladder, fps: 30, hasAudio: true, uri: (n) => `${n}.m3u8` });
    const { lines, variants } = parse(text);
    assert.equal(lines[0], '#EXTM3U');
    assert.ok(lines.includes('#EXT-X-INDEPENDENT-SEGMENTS'));
    assert.ok(text.endsWith('\n'));
    assert.deepEqual(
      variants.map((v) => v.uri),
      ['720p.m3u8', '480p.m3u8', '360p.m3u8'],
    );
    for (const v of variants) {
      const rend = DEFAULT_LADDER.find((x) => `${x.name}.m3u8` === v.uri)!;
      assert.equal(v.attrs.BANDWIDTH, String(peakBandwidthBps(rend, true)));
      assert.equal(v.attrs['AVERAGE-BANDWIDTH'], String(averageBandwidthBps(rend, true)));
      assert.equal(v.attrs.RESOLUTION, `${rend.width}x${rend.height}`);
      assert.equal(v.attrs.CODECS, codecsFor(rend, 30, true));
      assert.equal(v.attrs['FRAME-RATE'], '30.000');
      assert.ok(Number(v.attrs['AVERAGE-BANDWIDTH']) <= Number(v.attrs.BANDWIDTH));
    }
    assert.equal(variants[0]!.attrs.CODECS, 'avc1.4d401f,mp4a.40.2');
    const bw = variants.map((v) => Number(v.attrs.BANDWIDTH));
    assert.deepEqual(
      bw,
      [...bw].sort((a, b) => b - a),
    );
  });

  test('without audio: video-only codecs and bandwidth', () => {
    const { variants } = parse(
      masterPlaylist({ ladder, fps: 25, hasAudio: false, uri: (n) => `live/${n}.m3u8` }),
    );
    assert.equal(variants.length, 3);
    assert.equal(variants[0]!.uri, 'live/720p.m3u8');
    for (const v of variants) {
      assert.doesNotMatch(v.attrs.CODECS!, /mp4a/);
      assert.equal(v.attrs['FRAME-RATE'], '25.000');
    }
    assert.equal(variants[0]!.attrs.BANDWIDTH, String(peakBandwidthBps(DEFAULT_LADDER[0]!, false)));
  });
});

describe('media playlist', () => {
  const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
  const seg = (mediaSequence: number, discontinuitySequence: number, durationMs = 2000): Entry => ({
    kind: 'segment',
    attestation: {
      v: 1,
      channel: 'c',
      rendition: '720p',
      mediaSequence,
      discontinuitySequence,
      byteLength: 1000,
      durationMs,
      sha256: 'a'.repeat(64),
      prevHash: '0'.repeat(64),
      publishedAtMs: T0 + mediaSequence * 2000,
      signature: 'x',
    },
  });
  const gap = (mediaSequence: number, discontinuitySequence: number, durationMs = 2000): Entry => ({
    kind: 'gap',
    mediaSequence,
    discontinuitySequence,
    durationMs,
    publishedAtMs: T0 + mediaSequence * 2000,
  });
  const render = (
    entries: Entry[],
    opts: { ended?: boolean; vod?: boolean; segmentDurationS?: number } = {},
  ) =>
    mediaPlaylist({
      entries,
      segmentDurationS: opts.segmentDurationS ?? 2,
      uri: (s) => `../segments/720p/${s}.ts`,
      ended: opts.ended ?? false,
      vod: opts.vod ?? false,
    });
  /** Header lines, and for each segment URI the tags that precede it. */
  const parse = (text: string) => {
    const lines = text.trimEnd().split('\n');
    const firstSegmentTag = lines.findIndex((l) =>
      /^#EXT(INF|-X-DISCONTINUITY$|-X-PROGRAM-DATE-TIME)/.test(l),
    );
    const header = lines.slice(0, firstSegmentTag < 0 ? lines.length : firstSegmentTag);
    const segs: { uri: string; tags: string[] }[] = [];
    let tags: string[] = [];
    for (const line of lines.slice(header.length)) {
      if (line.startsWith('#')) tags.push(line);
      else {
        segs.push({ uri: line, tags });
        tags = [];
      }
    }
    return { lines, header, segs, trailer: tags };
  };
  const tag = (header: string[], name: string): string | undefined =>
    header.find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1);

  test('media and discontinuity sequence come from the first entry', () => {
    const { header, segs, trailer } = parse(render([seg(10, 2), seg(11, 2), seg(12, 2)]));
    assert.equal(header[0], '#EXTM3U');
    assert.equal(tag(header, '#EXT-X-MEDIA-SEQUENCE'), '10');
    assert.equal(tag(header, '#EXT-X-DISCONTINUITY-SEQUENCE'), '2');
    assert.equal(tag(header, '#EXT-X-VERSION'), '6');
    assert.equal(tag(header, '#EXT-X-PLAYLIST-TYPE'), undefined);
    assert.deepEqual(
      segs.map((s) => s.uri),
      ['../segments/720p/10.ts', '../segments/720p/11.ts', '../segments/720p/12.ts'],
    );
    for (const s of segs) {
      assert.ok(s.tags.includes('#EXTINF:2.000,'));
      assert.ok(!s.tags.includes('#EXT-X-DISCONTINUITY'));
      assert.ok(!s.tags.includes('#EXT-X-GAP'));
    }
    assert.deepEqual(trailer, [], 'no ENDLIST while live');
  });

  test('program date time is the segment start (publish time − duration)', () => {
    const { segs } = parse(render([seg(5, 0, 1500)]));
    const pdt = segs[0]!.tags.find((t) => t.startsWith('#EXT-X-PROGRAM-DATE-TIME:'))!;
    assert.equal(pdt, `#EXT-X-PROGRAM-DATE-TIME:${new Date(T0 + 5 * 2000 - 1500).toISOString()}`);
  });

  test('EXT-X-DISCONTINUITY exactly where the discontinuity sequence changes', () => {
    const entries = [seg(10, 2), seg(11, 2), seg(12, 3), seg(13, 3), gap(14, 4), seg(15, 4), seg(16, 7)];
    const { header, segs } = parse(render(entries));
    assert.equal(tag(header, '#EXT-X-DISCONTINUITY-SEQUENCE'), '2');
    const marked = segs.filter((s) => s.tags.includes('#EXT-X-DISCONTINUITY')).map((s) => s.uri);
    assert.deepEqual(marked, ['../segments/720p/12.ts', '../segments/720p/14.ts', '../segments/720p/16.ts']);
    // The tag comes first in the segment's tags and appears once per change.
    for (const s of segs)
      if (s.tags.includes('#EXT-X-DISCONTINUITY')) assert.equal(s.tags[0], '#EXT-X-DISCONTINUITY');
    assert.equal(
      render(entries)
        .split('\n')
        .filter((l) => l === '#EXT-X-DISCONTINUITY').length,
      3,
    );
  });

  test('gap entries are marked EXT-X-GAP and raise the version to 8', () => {
    const { header, segs } = parse(render([seg(1, 0), gap(2, 0, 1800), seg(3, 0)]));
    assert.equal(tag(header, '#EXT-X-VERSION'), '8');
    assert.deepEqual(
      segs.map((s) => s.tags.includes('#EXT-X-GAP')),
      [false, true, false],
    );
    assert.ok(segs[1]!.tags.includes('#EXTINF:1.800,'));
    assert.equal(segs[1]!.uri, '../segments/720p/2.ts');
    // A playlist whose first entry is a gap takes its sequence numbers from the gap.
    const { header: h2 } = parse(render([gap(40, 5), seg(41, 5)]));
    assert.equal(tag(h2, '#EXT-X-MEDIA-SEQUENCE'), '40');
    assert.equal(tag(h2, '#EXT-X-DISCONTINUITY-SEQUENCE'), '5');
  });

  test('ENDLIST and PLAYLIST-TYPE:VOD follow the flags', () => {
    const entries = [seg(0, 0), seg(1, 0)];
    for (const ended of [false, true])
      for (const vod of [false, true]) {
        const text = render(entries, { ended, vod });
        const lines = text.trimEnd().split('\n');
        assert.equal(lines.at(-1) === '#EXT-X-ENDLIST', ended, `ended=${ended} vod=${vod}`);
        assert.equal(lines.filter((l) => l === '#EXT-X-ENDLIST').length, ended ? 1 : 0);
        assert.equal(lines.includes('#EXT-X-PLAYLIST-TYPE:VOD'), vod, `ended=${ended} vod=${vod}`);
        if (vod)
          assert.ok(
            lines.indexOf('#EXT-X-PLAYLIST-TYPE:VOD') < lines.findIndex((l) => l.startsWith('#EXTINF')),
          );
      }
  });

  test('TARGETDURATION ≥ every EXTINF rounded, and ≥ the configured duration', () => {
    const check = (durations: number[], segmentDurationS: number): void => {
      const entries = durations.map((d, i) => (i % 3 === 2 ? gap(i, 0, d) : seg(i, 0, d)));
      const text = render(entries, { segmentDurationS });
      const target = Number(/#EXT-X-TARGETDURATION:(\d+)\n/.exec(text)![1]);
      assert.ok(target >= segmentDurationS, `target ${target} < ${segmentDurationS}`);
      const infs = [...text.matchAll(/#EXTINF:([0-9.]+),/g)].map((m) => Number(m[1]));
      assert.equal(infs.length, durations.length);
      for (const inf of infs) assert.ok(Math.round(inf) <= target, `EXTINF ${inf} > target ${target}`);
    };
    check([2000, 2499, 2500, 3400], 2);
    check([2000, 3500], 2);
    check([1000, 1000, 1000], 4);
    check([10_600], 2);
    // Random durations (integer milliseconds, as the store records them).
    for (let i = 0; i < 200; i++) {
      const n = 1 + Math.floor(Math.random() * 8);
      check(
        Array.from({ length: n }, () => Math.floor(Math.random() * 12_000)),
        1 + Math.floor(Math.random() * 10),
      );
    }
    assert.match(render([seg(0, 0, 2000), seg(1, 0, 3600)]), /#EXT-X-TARGETDURATION:4\n/);
    assert.match(render([seg(0, 0, 1000)], { segmentDurationS: 2 }), /#EXT-X-TARGETDURATION:2\n/);
  });

  test('an empty playlist is still well formed', () => {
    const text = render([], { segmentDurationS: 3 });
    assert.match(text, /^#EXTM3U\n/);
    assert.match(text, /#EXT-X-TARGETDURATION:3\n/);
    assert.match(text, /#EXT-X-MEDIA-SEQUENCE:0\n/);
    assert.doesNotMatch(text, /#EXTINF/);
  });
});

describe('parseRange', () => {
  const size = 100;
  test('single ranges', () => {
    assert.deepEqual(parseRange('bytes=0-9', size), [0, 9]);
    assert.deepEqual(parseRange('bytes=0-0', size), [0, 0]);
    assert.deepEqual(parseRange('bytes=99-99', size), [99, 99]);
    assert.deepEqual(parseRange('bytes=5-', size), [5, 99]);
    assert.deepEqual(parseRange('bytes=-3', size), [97, 99]);
    assert.deepEqual(parseRange('bytes=-100', size), [0, 99]);
    assert.deepEqual(parseRange('bytes=-1000', size), [0, 99], 'suffix longer than the body');
    assert.deepEqual(parseRange(' bytes=10-19 ', size), [10, 19]);
  });

  test('an over-long end is clamped to the last byte', () => {
    assert.deepEqual(parseRange('bytes=90-1000', size), [90, 99]);
    assert.deepEqual(parseRange('bytes=0-100', size), [0, 99]);
    assert.deepEqual(parseRange('bytes=0-99999999999999999999999', size), [0, 99]);
  });

  test('unsatisfiable ranges', () => {
    for (const h of [
      'bytes=100-',
      'bytes=100-200',
      'bytes=1000-2000',
      'bytes=-0',
      'bytes=99999999999999999999-',
    ])
      assert.equal(parseRange(h, size), 'unsatisfiable', h);
    // last < first is an invalid range: either rejected (416) or ignored is fine, never served as a range.
    assert.ok(['unsatisfiable', undefined].includes(parseRange('bytes=9-5', size) as undefined));
  });

  test('garbage and multi-range headers are ignored (whole body)', () => {
    for (const h of [
      '',
      'bytes=',
      'bytes=-',
      'bytes=a-b',
      'bytes=0x1-2',
      'bytes=1-2-3',
      'bytes 0-9',
      'items=0-9',
      'bytes=+1-2',
      'bytes=1.5-2',
      'bytes=0-1,5-6',
      'bytes=0-1, 5-6',
      'bytes=-1,-2',
    ])
      assert.equal(parseRange(h, size), undefined, JSON.stringify(h));
  });
});
