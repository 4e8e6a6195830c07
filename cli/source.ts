/** `peertv source`: broadcast one channel (test pattern, file, or RTMP from OBS) and serve it as origin. */
import crypto from 'node:crypto';
import path from 'node:path';
import {
  channelSettings,
  ConfigError,
  DEFAULT_CHANNEL,
  isStreamKey,
  Origin,
  parseLadder,
  raiseDescriptorLimit,
  RtmpIngestServer,
  SourceChannel,
  streamKeyMatches,
  TrackerLink,
  X264_PRESETS,
  type SourceInput,
  type X264Preset,
} from '../source/index.ts';
import { atOrigin, originPaths } from '../protocol/index.ts';
import { hostFlag, intFlag, parseFlags, UsageError, urlFlag } from './args.ts';

export const SOURCE_HELP = `Usage: peertv source [options]

Broadcast one live channel: encode an ABR ladder with ffmpeg, sign every segment, serve HLS as origin,
and record the broadcast.

Input (one of):
  --test-pattern             built-in test pattern with clock, frame counter and tone (default)
  --file PATH                a media file; add --loop to repeat it forever
  --rtmp                     RTMP ingest for OBS: rtmp://HOST:RTMP_PORT/live/<stream key>

Options:
  --channel ID               channel id (default: demo)
  --title TEXT               channel title
  --stream-key KEY           RTMP stream key, 8-128 of [A-Za-z0-9_-] (default: $PEERTV_STREAM_KEY,
                             else a random key that is printed)
  --rtmp-host HOST           RTMP listen address (default: 127.0.0.1)
  --rtmp-port N              RTMP listen port (default: 1935)
  --reconnect-grace S        seconds a dropped RTMP publisher may take to return (default: 30)
  --host HOST                origin listen address (default: 127.0.0.1)
  --port N                   origin listen port (default: 8081, 0 = any free port)
  --public-url URL           URL players and peers fetch from (behind a CDN or reverse proxy)
  --max-connections N        origin connections at once (default: what the descriptor limit leaves
                             after 256 for publication, 2 per connection); at the cap the longest-idle
                             connection is closed, and a new one is refused when none is idle
  --max-connections-per-address N
                             origin connections per client address or IPv6 /64 (default: a quarter
                             of --max-connections; 0 = no cap, e.g. behind a CDN or reverse proxy)
  --linger S                 once the broadcast ended, keep serving while viewers still fetch, so
                             they play to its end, at most S seconds (default: 30)
  --data-dir DIR             where segments, recordings and the channel key live (default: ./data)
  --tracker URL              register the channel with this tracker (e.g. http://127.0.0.1:8080);
                             registrations are signed with the channel's key, which owns the id there
  --ladder SPEC              renditions name:WxH:videoKbps[:audioKbps],… (default:
                             720p:1280x720:2500:128,480p:854x480:1200:96,360p:640x360:600:64)
  --segment-duration S       segment duration in seconds, 1-10 (default: 2)
  --fps N                    output frame rate (default: 30)
  --window N                 segments in the live playlist (default: 6)
  --preset NAME              x264 preset (default: veryfast)
  -h, --help                 show this help
`;

export interface SourceCliConfig {
  channel: SourceChannel;
  origin: Origin;
  host: string;
  port: number;
  /** Once the broadcast ended, how long the origin may keep serving viewers that still fetch. */
  lingerMs: number;
  tracker?: { url: string };
  rtmp?: { host: string; port: number; streamKey: string };
}

const FLAGS = {
  'test-pattern': { type: 'boolean' },
  file: { type: 'string' },
  loop: { type: 'boolean' },
  rtmp: { type: 'boolean' },
  channel: { type: 'string' },
  title: { type: 'string' },
  'stream-key': { type: 'string' },
  'rtmp-host': { type: 'string' },
  'rtmp-port': { type: 'string' },
  'reconnect-grace': { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'public-url': { type: 'string' },
  'max-connections': { type: 'string' },
  'max-connections-per-address': { type: 'string' },
  linger: { type: 'string' },
  'data-dir': { type: 'string' },
  ladder: { type: 'string' },
  'segment-duration': { type: 'string' },
  fps: { type: 'string' },
  window: { type: 'string' },
  preset: { type: 'string' },
  tracker: { type: 'string' },
} as const;

/** Parses flags into a channel and an origin (nothing started yet). Throws UsageError / ConfigError. */
export function sourceFromArgv(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): SourceCliConfig | 'help' {
  const { values: v } = parseFlags(argv, FLAGS);
  if (v.help) return 'help';
  const inputs = [v['test-pattern'], v.file !== undefined, v.rtmp].filter(Boolean).length;
  if (inputs > 1) throw new UsageError('choose one input: --test-pattern, --file or --rtmp');
  if (v.loop && v.file === undefined) throw new UsageError('--loop needs --file');
  let input: SourceInput = { kind: 'testpattern' };
  let streamKey: string | undefined;
  if (v.file !== undefined) input = { kind: 'file', path: path.resolve(v.file), loop: v.loop ?? false };
  if (v.rtmp) {
    streamKey = v['stream-key'] ?? env.PEERTV_STREAM_KEY ?? crypto.randomBytes(12).toString('base64url');
    if (!isStreamKey(streamKey))
      throw new UsageError('--stream-key must be 8-128 characters of A-Z a-z 0-9 _ -');
    input = { kind: 'rtmp', streamKey };
  } else if (v['stream-key'] !== undefined) throw new UsageError('--stream-key needs --rtmp');
  if (v.preset !== undefined && !(X264_PRESETS as readonly string[]).includes(v.preset))
    throw new UsageError(`--preset must be one of ${X264_PRESETS.join(', ')}`);
  const settings = channelSettings(v.channel ?? 'demo', {
    ...(v.title !== undefined && { title: v.title }),
    ...(v.ladder !== undefined && { ladder: parseLadder(v.ladder) }),
    segmentDurationS: intFlag(
      'segment-duration',
      v['segment-duration'],
      DEFAULT_CHANNEL.segmentDurationS,
      1,
      10,
    ),
    fps: intFlag('fps', v.fps, DEFAULT_CHANNEL.fps, 1, 60),
    playlistWindow: intFlag('window', v.window, DEFAULT_CHANNEL.playlistWindow, 3, 60),
    ...(v.preset !== undefined && { x264Preset: v.preset as X264Preset }),
  });
  // Every flag is checked before the channel opens its data directory (and locks it).
  const reconnectGraceMs = intFlag('reconnect-grace', v['reconnect-grace'], 30, 0, 3600) * 1000;
  const publicUrl = urlFlag('public-url', v['public-url']);
  const host = hostFlag('host', v.host, '127.0.0.1');
  const port = intFlag('port', v.port, 8081, 0, 65535);
  const lingerMs = intFlag('linger', v.linger, 30, 0, 3600) * 1000;
  const origin = new Origin({
    publicUrl,
    ...(v['max-connections'] !== undefined && {
      maxConnections: intFlag('max-connections', v['max-connections'], 0, 1, 1_000_000),
    }),
    ...(v['max-connections-per-address'] !== undefined && {
      maxConnectionsPerAddress: intFlag(
        'max-connections-per-address',
        v['max-connections-per-address'],
        0,
        0,
        1_000_000,
      ),
    }),
  });
  const rtmpHost = hostFlag('rtmp-host', v['rtmp-host'], '127.0.0.1');
  const rtmpPort = intFlag('rtmp-port', v['rtmp-port'], 1935, 0, 65535);
  const trackerUrl = urlFlag('tracker', v.tracker);
  const channel = new SourceChannel({
    settings,
    input,
    dataDir: path.resolve(v['data-dir'] ?? 'data'),
    reconnectGraceMs,
  });
  origin.addChannel(channel);
  return {
    channel,
    origin,
    host,
    port,
    lingerMs,
    ...(trackerUrl && { tracker: { url: trackerUrl } }),
    ...(streamKey && {
      rtmp: { host: rtmpHost, port: rtmpPort, streamKey },
    }),
  };
}

const listenError = (what: string, port: number, err: unknown): Error => {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new ConfigError(`${what} port ${port} is in use`);
  if (code === 'EACCES') return new ConfigError(`no permission to listen on ${what} port ${port}`);
  if (code === 'EADDRNOTAVAIL') return new ConfigError(`cannot listen for ${what} on that address`);
  return err as Error;
};

export interface RunningSource {
  channel: SourceChannel;
  origin: Origin;
  rtmp: RtmpIngestServer | undefined;
  link: TrackerLink | undefined;
  /**
   * Ends the broadcast (ENDLIST, recording finalized, the tracker told), keeps serving viewers that still
   * fetch for up to `lingerMs` so they play to the end, then destroys the servers and the channel.
   * Idempotent.
   */
  end(): Promise<void>;
}

/** Starts what {@link sourceFromArgv} built; prints the URLs a broadcaster needs. */
export async function startSource(
  cfg: SourceCliConfig,
  log: (line: string) => void = console.log,
): Promise<RunningSource> {
  const { channel, origin } = cfg;
  // Node raises the soft descriptor limit to the hard one at start-up; this makes sure of it. The
  // origin's connection cap is derived from the limit in force when it listens.
  const fds = raiseDescriptorLimit();
  await origin.listen(cfg.port, cfg.host).catch((err) => {
    throw listenError('origin', cfg.port, err);
  });
  const limits = origin.limits!;
  log(
    `origin: at most ${limits.maxConnections} connections, ` +
      `${limits.maxConnectionsPerAddress > 0 ? `${limits.maxConnectionsPerAddress} per address` : 'any number per address'} ` +
      `(descriptor limit ${fds?.soft ?? 'unknown'})`,
  );
  let rtmp: RtmpIngestServer | undefined;
  let link: TrackerLink | undefined;
  try {
    if (cfg.rtmp) {
      const { streamKey } = cfg.rtmp;
      rtmp = new RtmpIngestServer({ resolve: (k) => (streamKeyMatches(k, streamKey) ? channel : undefined) });
      rtmp.on('refused', ({ remote, reason }) => log(`rtmp: refused ${remote}: ${reason}`));
      rtmp.on('publish', ({ remote }) => log(`rtmp: publisher connected from ${remote}`));
      rtmp.on('closed', ({ clean }) => log(`rtmp: publisher ${clean ? 'stopped' : 'lost'}`));
      const port = await rtmp.listen(cfg.rtmp.port, cfg.rtmp.host).catch((err) => {
        throw listenError('RTMP', cfg.rtmp!.port, err);
      });
      log(`OBS: server rtmp://${cfg.rtmp.host}:${port}/live  stream key ${streamKey}`);
    }
    channel.on('error', ({ code, message }) => log(`${code}: ${message}`));
    channel.on('broadcast-started', (b) => log(`broadcast ${b.id} started`));
    channel.on('broadcast-ended', (b) =>
      log(
        `broadcast ${b.id} ended; recording: ${atOrigin(origin.publicUrl, originPaths.recordingMaster(channel.settings.id, b.id))}`,
      ),
    );
    await channel.start();
    if (cfg.tracker) {
      link = new TrackerLink({ trackerUrl: cfg.tracker.url, channel, origin });
      let said = '';
      link.on('registered', () => log(`registered with the tracker ${cfg.tracker!.url}`));
      link.on('error', ({ code, message }) => {
        // Say each distinct problem once (reconnect attempts repeat it).
        if (message !== said) log(`${code}: ${message}`);
        said = message;
      });
    }
  } catch (err) {
    link?.destroy();
    await rtmp?.destroy();
    await origin.destroy();
    await channel.destroy();
    throw err;
  }
  log(`live: ${atOrigin(origin.publicUrl, originPaths.liveMaster(channel.settings.id))}`);
  let ending: Promise<void> | undefined;
  return {
    channel,
    origin,
    rtmp,
    link,
    end: () =>
      (ending ??= (async () => {
        await rtmp?.destroy();
        // The link registers the channel again when the broadcast ends: wait for the tracker's answer.
        const told = link?.registered ? nextRegistration(link, 5000) : undefined;
        await channel.end();
        await told;
        // Viewers still polling have not seen ENDLIST yet, or still fetch the last segments: serve them
        // until they go quiet (they stop polling at ENDLIST), at most lingerMs.
        const quietMs = channel.settings.segmentDurationS * 1500 + 1000;
        if (cfg.lingerMs > 0 && Date.now() - origin.lastRequestAtMs < quietMs) {
          log(`letting viewers reach the end (at most ${cfg.lingerMs / 1000} s; Ctrl-C again to quit now)…`);
          await origin.waitQuiet(quietMs, cfg.lingerMs);
        }
        link?.destroy();
        await origin.destroy(2000);
        await channel.destroy();
      })()),
  };
}

/** Resolves at the link's next successful registration, or after `timeoutMs`. */
function nextRegistration(link: TrackerLink, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      link.off('registered', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    link.on('registered', done);
  });
}

/**
 * Runs until SIGINT/SIGTERM (or the end of a file input). The first signal, from the moment the flags
 * are read, ends the broadcast properly (see {@link RunningSource.end}) and then returns; a second one
 * exits at once (the recording is then finalized at the next start). `onStarted` sees the running source.
 */
export async function runSourceCli(
  argv: string[],
  hooks: { onStarted?: (running: RunningSource) => void } = {},
): Promise<void> {
  const cfg = sourceFromArgv(argv);
  if (cfg === 'help') {
    process.stdout.write(SOURCE_HELP);
    return;
  }
  let signals = 0;
  let stopRequested!: () => void;
  const stopRequest = new Promise<void>((resolve) => (stopRequested = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      console.log(`${signal} again: exiting now`);
      process.exit(130);
    }
    console.log('stopping: finishing the last segment and the recording… (Ctrl-C again to quit at once)');
    // Whatever happens while stopping, the process ends.
    setTimeout(() => {
      console.error('peertv source: could not stop in time; exiting');
      process.exit(1);
    }, cfg.lingerMs + 30_000).unref();
    stopRequested();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let running: RunningSource;
  try {
    running = await startSource(cfg);
  } catch (err) {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    throw err;
  }
  hooks.onStarted?.(running);
  const status = setInterval(() => {
    const c = running.origin.counters()[cfg.channel.settings.id];
    const newest = cfg.channel.store.nextSequence() - 1;
    console.log(
      `${cfg.channel.status}  newest segment #${newest}  origin sent ${fmtBytes(c?.segment.bytes ?? 0)} of segments, ` +
        `${c?.playlist.requests ?? 0} playlist requests`,
    );
  }, 10_000);
  status.unref();
  const inputEnded = new Promise<void>((resolve) =>
    running.channel.on('broadcast-ended', () => {
      if (cfg.channel.input.kind === 'file' && !cfg.channel.input.loop) resolve();
    }),
  );
  await Promise.race([stopRequest, inputEnded]);
  await running.end();
  clearInterval(status);
}

function fmtBytes(n: number): string {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
