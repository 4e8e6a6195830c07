/** Typed settings of a channel and its ABR ladder, with defaults and validation. */
import { isChannelId, isRenditionName } from '../protocol/index.ts';

export interface Rendition {
  /** Name used in URLs and segment ids, e.g. `720p`. */
  readonly name: string;
  readonly width: number;
  readonly height: number;
  readonly videoKbps: number;
  readonly audioKbps: number;
}

export const DEFAULT_LADDER: readonly Rendition[] = [
  { name: '720p', width: 1280, height: 720, videoKbps: 2500, audioKbps: 128 },
  { name: '480p', width: 854, height: 480, videoKbps: 1200, audioKbps: 96 },
  { name: '360p', width: 640, height: 360, videoKbps: 600, audioKbps: 64 },
];

/**
 * A lighter ladder for benchmarks and calibration runs on a small machine (`npm run bench -- --light`,
 * the simulator's `light` ladder): 480p and 240p.
 */
export const LIGHT_LADDER: readonly Rendition[] = [
  { name: '480p', width: 854, height: 480, videoKbps: 1200, audioKbps: 96 },
  { name: '240p', width: 426, height: 240, videoKbps: 400, audioKbps: 64 },
];

export const X264_PRESETS = [
  'ultrafast',
  'superfast',
  'veryfast',
  'faster',
  'fast',
  'medium',
  'slow',
  'slower',
  'veryslow',
] as const;
export type X264Preset = (typeof X264_PRESETS)[number];

export interface ChannelSettings {
  readonly id: string;
  readonly title: string;
  /** Target segment duration; the GOP equals it so every segment starts with a keyframe. */
  readonly segmentDurationS: number;
  readonly fps: number;
  /** Segments listed in a live media playlist (sliding window). */
  readonly playlistWindow: number;
  readonly ladder: readonly Rendition[];
  readonly x264Preset: X264Preset;
}

export const DEFAULT_CHANNEL: Omit<ChannelSettings, 'id'> = {
  title: 'PeerTV channel',
  segmentDurationS: 2,
  fps: 30,
  playlistWindow: 6,
  ladder: DEFAULT_LADDER,
  x264Preset: 'veryfast',
};

export type SourceInput =
  | { readonly kind: 'testpattern' }
  | { readonly kind: 'file'; readonly path: string; readonly loop: boolean }
  | { readonly kind: 'rtmp'; readonly streamKey: string };

/** Error for invalid settings or inputs: a one-line message meant for the operator. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const STREAM_KEY_PATTERN = /^[A-Za-z0-9_-]{8,128}$/;

export function isStreamKey(value: unknown): value is string {
  return typeof value === 'string' && STREAM_KEY_PATTERN.test(value);
}

function checkInt(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ConfigError(`${what} must be an integer from ${min} to ${max} (got ${value})`);
}

export function validateLadder(ladder: readonly Rendition[]): void {
  if (ladder.length === 0) throw new ConfigError('the ladder needs at least one rendition');
  if (ladder.length > 8) throw new ConfigError('the ladder has at most 8 renditions');
  const names = new Set<string>();
  for (const r of ladder) {
    if (!isRenditionName(r.name))
      throw new ConfigError(`rendition name ${JSON.stringify(r.name)} must match [a-z0-9][a-z0-9_-]{0,31}`);
    if (names.has(r.name)) throw new ConfigError(`rendition name ${r.name} appears twice`);
    names.add(r.name);
    checkInt(`${r.name} width`, r.width, 16, 3840);
    checkInt(`${r.name} height`, r.height, 16, 2160);
    if (r.width % 2 || r.height % 2)
      throw new ConfigError(`${r.name}: width and height must be even (4:2:0)`);
    checkInt(`${r.name} video bitrate (kbit/s)`, r.videoKbps, 50, 50_000);
    checkInt(`${r.name} audio bitrate (kbit/s)`, r.audioKbps, 16, 512);
  }
}

/** Merges caller settings over the defaults and rejects contradictions with a clear message. */
export function channelSettings(
  id: string,
  partial: Partial<Omit<ChannelSettings, 'id'>> = {},
): ChannelSettings {
  const s: ChannelSettings = { ...DEFAULT_CHANNEL, ...partial, id };
  if (!isChannelId(s.id))
    throw new ConfigError(`channel id ${JSON.stringify(id)} must match [a-z0-9][a-z0-9_-]{0,63}`);
  if (typeof s.title !== 'string' || s.title.length === 0 || s.title.length > 200)
    throw new ConfigError('title must be 1 to 200 characters');
  checkInt('segment duration (s)', s.segmentDurationS, 1, 10);
  checkInt('frame rate', s.fps, 1, 60);
  checkInt('playlist window (segments)', s.playlistWindow, 3, 60);
  if (!X264_PRESETS.includes(s.x264Preset))
    throw new ConfigError(`x264 preset must be one of ${X264_PRESETS.join(', ')}`);
  validateLadder(s.ladder);
  return s;
}

/**
 * Parses a ladder given on the command line: `name:WxH:videoKbps[:audioKbps],…`
 * e.g. `720p:1280x720:2500,360p:640x360:600:64`.
 */
export function parseLadder(text: string): Rendition[] {
  const ladder = text.split(',').map((part) => {
    const m = /^([a-z0-9][a-z0-9_-]*):(\d+)x(\d+):(\d+)(?::(\d+))?$/.exec(part.trim());
    if (!m)
      throw new ConfigError(`bad rendition "${part}": expected name:WIDTHxHEIGHT:videoKbps[:audioKbps]`);
    return {
      name: m[1]!,
      width: Number(m[2]),
      height: Number(m[3]),
      videoKbps: Number(m[4]),
      audioKbps: m[5] ? Number(m[5]) : 96,
    };
  });
  validateLadder(ladder);
  return ladder;
}

/**
 * Lowest H.264 level whose limits (H.264 Table A-1) admit a resolution and frame rate: both the
 * macroblock rate (MaxMBPS) and the frame size (MaxFS) must fit.
 */
export function h264Level(
  r: Pick<Rendition, 'width' | 'height'>,
  fps: number,
): { level: string; hex: string } {
  const frameMbs = Math.ceil(r.width / 16) * Math.ceil(r.height / 16);
  const mbPerSecond = frameMbs * fps;
  // [MaxMBPS, MaxFS, level, level_idc in hex]
  const levels: [number, number, string, string][] = [
    [40_500, 1_620, '3.0', '1e'],
    [108_000, 3_600, '3.1', '1f'],
    [216_000, 5_120, '3.2', '20'],
    [245_760, 8_192, '4.0', '28'],
    [522_240, 8_704, '4.2', '2a'],
    [589_824, 22_080, '5.0', '32'],
    [983_040, 36_864, '5.1', '33'],
    [2_073_600, 36_864, '5.2', '34'],
  ];
  const found =
    levels.find(([maxMbps, maxFs]) => mbPerSecond <= maxMbps && frameMbs <= maxFs) ??
    levels[levels.length - 1]!;
  return { level: found[2], hex: found[3] };
}

/** RFC 6381 codecs string for a rendition (H.264 Main + AAC-LC). */
export function codecsFor(r: Rendition, fps: number, hasAudio: boolean): string {
  const video = `avc1.4d40${h264Level(r, fps).hex}`;
  return hasAudio ? `${video},mp4a.40.2` : video;
}

/** Peak bit rate declared in the master playlist: VBV max rate + audio + MPEG-TS overhead. */
export function peakBandwidthBps(r: Rendition, hasAudio: boolean): number {
  const kbps = r.videoKbps * 1.1 + (hasAudio ? r.audioKbps : 0);
  return Math.round(kbps * 1000 * 1.1);
}

export function averageBandwidthBps(r: Rendition, hasAudio: boolean): number {
  const kbps = r.videoKbps + (hasAudio ? r.audioKbps : 0);
  return Math.round(kbps * 1000 * 1.08);
}
