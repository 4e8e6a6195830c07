/** Runs ffmpeg for a plan through fluent-ffmpeg, and probes media files before a broadcast. */
import { spawnSync, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import createDebug from 'debug';
import { TypedEmitter } from '../protocol/index.ts';
import { ConfigError } from './config.ts';
import type { FfmpegPlan } from './ffmpeg-args.ts';

const debug = createDebug('peertv:source:ffmpeg');

export interface FfmpegBinaries {
  ffmpeg: string;
  ffprobe: string;
}

/** Finds ffmpeg and ffprobe (env FFMPEG_PATH / FFPROBE_PATH, then PATH); throws a clear ConfigError. */
export function findFfmpeg(): FfmpegBinaries {
  const find = (name: string, env: string | undefined): string => {
    if (env) {
      if (fs.existsSync(env)) return env;
      throw new ConfigError(`${name} not found at ${env} (from the environment)`);
    }
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    const found = r.stdout.trim();
    if (r.status === 0 && found) return found;
    throw new ConfigError(
      `${name} is not installed: install Debian's package "ffmpeg" (apt-get install -y ffmpeg)`,
    );
  };
  return {
    ffmpeg: find('ffmpeg', process.env.FFMPEG_PATH),
    ffprobe: find('ffprobe', process.env.FFPROBE_PATH),
  };
}

export interface ProbedMedia {
  hasVideo: boolean;
  hasAudio: boolean;
  videoCodec: string;
  durationS: number | undefined;
}

/** Checks a media file: readable, has a video stream, and its video actually decodes. */
export async function probeMediaFile(file: string, bins: FfmpegBinaries): Promise<ProbedMedia> {
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    throw new ConfigError(`cannot read media file ${file}: missing or not readable`);
  }
  if (!fs.statSync(file).isFile()) throw new ConfigError(`${file} is not a regular file`);
  ffmpeg.setFfprobePath(bins.ffprobe);
  const data = await new Promise<ffmpeg.FfprobeData>((resolve, reject) =>
    ffmpeg.ffprobe(file, (err, d) => (err ? reject(err) : resolve(d))),
  ).catch(() => {
    throw new ConfigError(`${file} is not a media file ffmpeg can read`);
  });
  const video = data.streams.find((s) => s.codec_type === 'video' && s.disposition?.attached_pic !== 1);
  const audio = data.streams.find((s) => s.codec_type === 'audio');
  if (!video) throw new ConfigError(`${file} has no video stream`);
  // ffprobe names codecs it cannot decode too: decode one frame to be sure.
  const decodeError = await new Promise<string | undefined>((resolve) =>
    execFile(
      bins.ffmpeg,
      ['-v', 'error', '-xerror', '-i', file, '-map', '0:v:0', '-frames:v', '1', '-f', 'null', '-'],
      { timeout: 30_000 },
      (err, _out, stderr) => resolve(err ? stderr.trim().split('\n').pop() || err.message : undefined),
    ),
  );
  if (decodeError)
    throw new ConfigError(
      `${file}: video codec ${video.codec_name ?? 'unknown'} cannot be decoded (${decodeError})`,
    );
  const durationS = Number(data.format.duration);
  return {
    hasVideo: true,
    hasAudio: audio !== undefined,
    videoCodec: video.codec_name ?? 'unknown',
    durationS: Number.isFinite(durationS) ? durationS : undefined,
  };
}

export type FfmpegRunEvents = {
  spawn: (pid: number) => void;
  exit: (info: { code: number | null; signal: string | null; stderrTail: string[] }) => void;
};

/** One ffmpeg process. `stop()` asks it to finish cleanly (last segment flushed); `kill()` does not. */
export class FfmpegRun extends TypedEmitter<FfmpegRunEvents> {
  readonly #command: ffmpeg.FfmpegCommand;
  readonly #stderrTail: string[] = [];
  #exited = false;
  #pendingSignal: NodeJS.Signals | undefined;
  pid: number | undefined;
  readonly startedAtMs = Date.now();

  constructor(plan: FfmpegPlan, bins: FfmpegBinaries, stdin?: Readable) {
    super();
    ffmpeg.setFfmpegPath(bins.ffmpeg);
    const cmd = ffmpeg();
    for (const input of plan.inputs) {
      cmd.input(input.source === 'pipe:0' && stdin ? stdin : input.source);
      if (input.options.length > 0) cmd.inputOptions(...input.options);
    }
    cmd.complexFilter(plan.complexFilter);
    cmd.outputOptions('-hide_banner', '-loglevel', 'level+warning', '-nostats', ...plan.outputOptions);
    cmd.output(plan.output);
    cmd.on('start', (line: string) => {
      debug('start %s', line);
      const proc = (cmd as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
      if (!proc?.pid) return;
      this.pid = proc.pid;
      proc.stdin?.on('error', () => {
        /* ffmpeg closing its stdin early (e.g. killed) is reported through exit */
      });
      proc.on('exit', (code, signal) => this.#onExit(code, signal));
      // Never leave an encoder behind when this process goes away.
      const reap = () => proc.kill('SIGKILL');
      process.once('exit', reap);
      proc.once('exit', () => process.off('exit', reap));
      if (this.#pendingSignal) this.#command.kill(this.#pendingSignal);
      else this.emit('spawn', proc.pid);
    });
    cmd.on('stderr', (line: string) => {
      this.#stderrTail.push(line);
      if (this.#stderrTail.length > 20) this.#stderrTail.shift();
    });
    // fluent-ffmpeg reports non-zero exits as errors too; the process exit listener is authoritative.
    // An error before any process started (e.g. spawn failed) is an exit of its own.
    cmd.on('error', (err: Error) => {
      debug('ffmpeg: %s', err.message);
      if (this.pid === undefined) {
        this.#stderrTail.push(err.message);
        this.#onExit(null, null);
      }
    });
    this.#command = cmd;
    cmd.run();
  }

  #onExit(code: number | null, signal: string | null): void {
    if (this.#exited) return;
    this.#exited = true;
    debug('exit code=%s signal=%s', code, signal);
    // Let fluent-ffmpeg deliver the last stderr lines first.
    setImmediate(() => this.emit('exit', { code, signal, stderrTail: [...this.#stderrTail] }));
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Graceful: SIGINT makes ffmpeg flush the current segment; SIGKILL after `graceMs`. */
  stop(graceMs = 5000): void {
    if (this.#exited) return;
    this.#signal('SIGINT');
    const t = setTimeout(() => this.kill(), graceMs);
    t.unref();
    this.once('exit', () => clearTimeout(t));
  }

  kill(): void {
    if (!this.#exited) this.#signal('SIGKILL');
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.pid === undefined) this.#pendingSignal = signal;
    else this.#command.kill(signal);
  }
}
