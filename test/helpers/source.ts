/** Test helpers for the source room: a tiny ladder that encodes fast on 2 cores, temp dirs, waits. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Attestation } from '../../protocol/index.ts';
import { waitFor } from './wait-for.ts';
import {
  channelSettings,
  Origin,
  SourceChannel,
  type Rendition,
  type SourceInput,
} from '../../source/index.ts';

export const TINY_LADDER: Rendition[] = [
  { name: '180p', width: 320, height: 180, videoKbps: 300, audioKbps: 48 },
  { name: '90p', width: 160, height: 90, videoKbps: 100, audioKbps: 32 },
];

export function tempDir(prefix = 'peertv-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function tinyChannel(
  opts: {
    id?: string;
    input?: SourceInput;
    dataDir?: string;
    ladder?: Rendition[];
    segmentDurationS?: number;
    reconnectGraceMs?: number;
  } = {},
): SourceChannel {
  return new SourceChannel({
    settings: channelSettings(opts.id ?? 'test', {
      ladder: opts.ladder ?? TINY_LADDER,
      segmentDurationS: opts.segmentDurationS ?? 1,
      fps: 15,
      x264Preset: 'ultrafast',
      playlistWindow: 4,
    }),
    input: opts.input ?? { kind: 'testpattern' },
    dataDir: opts.dataDir ?? tempDir(),
    restart: { initialDelayMs: 200, maxDelayMs: 1000 },
    reconnectGraceMs: opts.reconnectGraceMs ?? 2000,
  });
}

/** Resolves once `count` segments of `rendition` (default: any) were published. */
export function segments(
  channel: SourceChannel,
  count: number,
  rendition?: string,
  timeoutMs = 60_000,
): Promise<Attestation[]> {
  return new Promise((resolve, reject) => {
    const got: Attestation[] = [];
    const timer = setTimeout(() => {
      channel.off('segment', on);
      reject(new Error(`timed out waiting for ${count} segments (got ${got.length})`));
    }, timeoutMs);
    const on = (a: Attestation): void => {
      if (rendition && a.rendition !== rendition) return;
      got.push(a);
      if (got.length >= count) {
        clearTimeout(timer);
        channel.off('segment', on);
        resolve(got);
      }
    };
    channel.on('segment', on);
  });
}

/** A channel that is on air with an origin on a free loopback port. */
export async function liveOrigin(channel: SourceChannel): Promise<{ origin: Origin; base: string }> {
  const origin = new Origin();
  origin.addChannel(channel);
  await origin.listen(0);
  await channel.start();
  return { origin, base: `${origin.publicUrl}/channels/${channel.settings.id}` };
}

export { waitFor };

/** Publishers started by {@link ffmpegPublisher} and still running. */
export const publishers = new Set<ChildProcess>();

/** An RTMP publisher like OBS: ffmpeg sending H.264 + AAC over FLV, paced in real time. */
export function ffmpegPublisher(url: string, seconds: number) {
  const child = spawn(
    'ffmpeg',
    [
      ...['-v', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15'],
      ...['-re', '-f', 'lavfi', '-i', 'sine=frequency=880', '-t', String(seconds)],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '15', '-c:a', 'aac', '-b:a', '48k'],
      ...['-f', 'flv', url],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  publishers.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('exit', (code) => {
      publishers.delete(child);
      resolve({ code, stderr });
    }),
  );
  return { child, done };
}
