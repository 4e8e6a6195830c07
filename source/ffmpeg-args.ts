/**
 * The one place where ffmpeg's arguments are built from typed settings.
 * Pure: no process is started here (see `ffmpeg-run.ts`), so the plan is unit-testable.
 */
import path from 'node:path';
import { h264Level, type ChannelSettings, type SourceInput } from './config.ts';

export interface FfmpegInput {
  /** A path, a lavfi graph, or `pipe:0` (RTMP ingest feeds FLV on stdin). */
  readonly source: string;
  readonly options: readonly string[];
}

export interface FfmpegPlan {
  readonly inputs: readonly FfmpegInput[];
  readonly complexFilter: string;
  readonly outputOptions: readonly string[];
  /** ffmpeg's own variant playlists (work files, never served): `<workDir>/%v/index.m3u8`. */
  readonly output: string;
  readonly hasAudio: boolean;
}

/** Where ffmpeg writes rendition `name` during one run. */
export const workPlaylistPath = (workDir: string, rendition: string): string =>
  path.join(workDir, rendition, 'index.m3u8');

export function buildFfmpegPlan(
  settings: ChannelSettings,
  input: SourceInput,
  opts: {
    workDir: string;
    hasAudio: boolean;
    /** Pace the input in real time (default). False encodes as fast as possible (benchmarks). */
    realtime?: boolean;
    /** Stop after this much media (benchmarks). */
    maxDurationS?: number;
  },
): FfmpegPlan {
  const { ladder, fps, segmentDurationS: seg } = settings;
  const gop = fps * seg;
  const inputs: FfmpegInput[] = [];
  const re = opts.realtime === false ? [] : ['-re'];
  let videoIn: string;
  let audioIn: string | undefined;
  let prefilter = '';

  switch (input.kind) {
    case 'testpattern': {
      const top = ladder.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
      inputs.push({
        source: `testsrc2=size=${top.width}x${top.height}:rate=${fps}`,
        options: [...re, '-f', 'lavfi'],
      });
      inputs.push({
        source: 'sine=frequency=440:beep_factor=4:sample_rate=48000',
        options: [...re, '-f', 'lavfi'],
      });
      videoIn = '0:v';
      audioIn = opts.hasAudio ? '1:a' : undefined;
      const size = Math.max(16, Math.round(top.height / 20));
      // Burned-in wall clock (UTC) and frame counter, so latency and freezes are visible by eye.
      prefilter =
        `drawtext=font=Monospace:fontsize=${size}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6` +
        `:x=(w-tw)/2:y=h-th-${size}:text='%{gmtime} UTC  frame %{frame_num}',`;
      break;
    }
    case 'file':
      inputs.push({ source: input.path, options: [...re, ...(input.loop ? ['-stream_loop', '-1'] : [])] });
      videoIn = '0:v:0';
      audioIn = opts.hasAudio ? '0:a:0' : undefined;
      break;
    case 'rtmp':
      // FLV from our RTMP ingest server on stdin; it is already paced by the encoder.
      inputs.push({ source: 'pipe:0', options: ['-f', 'flv'] });
      videoIn = '0:v:0';
      audioIn = opts.hasAudio ? '0:a:0' : undefined;
      break;
  }

  const splits = ladder.map((_, i) => `[s${i}]`).join('');
  const scales = ladder.map(
    (r, i) =>
      `[s${i}]scale=${r.width}:${r.height}:force_original_aspect_ratio=decrease,` +
      `pad=${r.width}:${r.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p[v${i}]`,
  );
  const complexFilter = [
    `[${videoIn}]fps=${fps},${prefilter}split=${ladder.length}${splits}`,
    ...scales,
  ].join(';');

  const out: string[] = opts.maxDurationS !== undefined ? ['-t', String(opts.maxDurationS)] : [];
  ladder.forEach((r, i) => {
    out.push('-map', `[v${i}]`);
    if (audioIn) out.push('-map', audioIn);
  });
  out.push(
    '-c:v',
    'libx264',
    '-preset',
    settings.x264Preset,
    '-tune',
    'zerolatency',
    '-profile:v',
    'main',
    '-g',
    String(gop),
    '-keyint_min',
    String(gop),
    '-sc_threshold',
    '0',
    // Keyframes at exact multiples of the segment duration, so boundaries line up across renditions.
    '-force_key_frames',
    `expr:gte(t,n_forced*${seg})`,
  );
  ladder.forEach((r, i) => {
    out.push(
      `-b:v:${i}`,
      `${r.videoKbps}k`,
      `-maxrate:v:${i}`,
      `${Math.round(r.videoKbps * 1.1)}k`,
      `-bufsize:v:${i}`,
      `${r.videoKbps * 2}k`,
      `-level:v:${i}`,
      h264Level(r, fps).level,
    );
    if (audioIn) out.push(`-b:a:${i}`, `${r.audioKbps}k`);
  });
  if (audioIn) out.push('-c:a', 'aac', '-ar', '48000', '-ac', '2');
  const streamMap = ladder.map((r, i) => `v:${i}${audioIn ? `,a:${i}` : ''},name:${r.name}`).join(' ');
  out.push(
    '-f',
    'hls',
    '-hls_time',
    String(seg),
    '-hls_list_size',
    '10',
    // temp_file: segments are written as .tmp and renamed when complete, so a crash never leaves
    // a partial segment under its final name.
    '-hls_flags',
    'temp_file+independent_segments',
    '-hls_segment_type',
    'mpegts',
    '-start_number',
    '0',
    '-var_stream_map',
    streamMap,
    '-hls_segment_filename',
    path.join(opts.workDir, '%v', '%d.ts'),
  );
  return {
    inputs,
    complexFilter,
    outputOptions: out,
    output: path.join(opts.workDir, '%v', 'index.m3u8'),
    hasAudio: audioIn !== undefined,
  };
}

/** The full argument vector (for logs and tests), in the order fluent-ffmpeg produces it. */
export function planToArgs(plan: FfmpegPlan): string[] {
  const args: string[] = [];
  for (const i of plan.inputs) args.push(...i.options, '-i', i.source);
  args.push('-filter_complex', plan.complexFilter, ...plan.outputOptions, plan.output);
  return args;
}
