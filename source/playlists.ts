/** HLS playlist rendering (pure functions over store entries). */
import { codecsFor, peakBandwidthBps, averageBandwidthBps, type Rendition } from './config.ts';
import { entryDisc, entryDurationMs, entryPublishedAtMs, entrySeq, type Entry } from './store.ts';

export function masterPlaylist(p: {
  ladder: readonly Rendition[];
  fps: number;
  hasAudio: boolean;
  uri: (rendition: string) => string;
}): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:6', '#EXT-X-INDEPENDENT-SEGMENTS'];
  const sorted = [...p.ladder].sort(
    (a, b) => peakBandwidthBps(b, p.hasAudio) - peakBandwidthBps(a, p.hasAudio),
  );
  for (const r of sorted) {
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${peakBandwidthBps(r, p.hasAudio)},AVERAGE-BANDWIDTH=${averageBandwidthBps(r, p.hasAudio)},` +
        `RESOLUTION=${r.width}x${r.height},FRAME-RATE=${p.fps.toFixed(3)},CODECS="${codecsFor(r, p.fps, p.hasAudio)}"`,
      p.uri(r.name),
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A media playlist over consecutive entries. `ended` appends EXT-X-ENDLIST; `vod` marks
 * PLAYLIST-TYPE:VOD (a finished recording).
 */
export function mediaPlaylist(p: {
  entries: readonly Entry[];
  segmentDurationS: number;
  uri: (seq: number) => string;
  ended: boolean;
  vod: boolean;
}): string {
  const { entries } = p;
  const maxS = entries.reduce((m, e) => Math.max(m, entryDurationMs(e) / 1000), 0);
  const target = Math.max(p.segmentDurationS, Math.round(maxS));
  const hasGap = entries.some((e) => e.kind === 'gap');
  const first = entries[0];
  const lines = [
    '#EXTM3U',
    `#EXT-X-VERSION:${hasGap ? 8 : 6}`,
    `#EXT-X-TARGETDURATION:${target}`,
    `#EXT-X-MEDIA-SEQUENCE:${first ? entrySeq(first) : 0}`,
    `#EXT-X-DISCONTINUITY-SEQUENCE:${first ? entryDisc(first) : 0}`,
    '#EXT-X-INDEPENDENT-SEGMENTS',
  ];
  if (p.vod) lines.push('#EXT-X-PLAYLIST-TYPE:VOD');
  let prev: Entry | undefined;
  for (const e of entries) {
    const seq = entrySeq(e);
    if (prev && entryDisc(prev) !== entryDisc(e)) lines.push('#EXT-X-DISCONTINUITY');
    // Segment start on the wall clock: published right after it was complete, so start ≈ publish − duration.
    const startMs = entryPublishedAtMs(e) - entryDurationMs(e);
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(startMs).toISOString()}`);
    lines.push(`#EXTINF:${(entryDurationMs(e) / 1000).toFixed(3)},`);
    if (e.kind === 'gap') lines.push('#EXT-X-GAP');
    lines.push(p.uri(seq));
    prev = e;
  }
  if (p.ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

/** Parses ffmpeg's own (work) media playlist: its segment file numbers and durations, in order. */
export function parseWorkPlaylist(text: string): { index: number; durationS: number }[] {
  const out: { index: number; durationS: number }[] = [];
  let duration: number | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const inf = /^#EXTINF:([0-9.]+)/.exec(line);
    if (inf) {
      duration = Number(inf[1]);
      continue;
    }
    const seg = /^(\d+)\.ts$/.exec(line);
    if (seg && duration !== undefined) {
      out.push({ index: Number(seg[1]), durationS: duration });
      duration = undefined;
    }
  }
  return out;
}
