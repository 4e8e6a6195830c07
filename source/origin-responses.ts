/**
 * How the origin answers: bodies and segment files with their content type, cache headers and byte
 * ranges, errors as JSON, and every byte and request counted per channel and kind.
 */
import fs from 'node:fs';
import type { Request, Response } from 'express';
import createDebug from 'debug';

const debug = createDebug('peertv:source:origin');

export type ByteKind = 'playlist' | 'segment' | 'attestation' | 'metadata';
export type ChannelCounters = Record<ByteKind, { bytes: number; requests: number }>;

export const newCounters = (): ChannelCounters => ({
  playlist: { bytes: 0, requests: 0 },
  segment: { bytes: 0, requests: 0 },
  attestation: { bytes: 0, requests: 0 },
  metadata: { bytes: 0, requests: 0 },
});

export const TYPES = {
  m3u8: 'application/vnd.apple.mpegurl',
  ts: 'video/mp2t',
  json: 'application/json; charset=utf-8',
} as const;

export const IMMUTABLE = 'public, max-age=31536000, immutable';

export function sendText(
  res: Response,
  counters: ChannelCounters,
  text: string,
  type: string,
  cache: string,
): void {
  const body = Buffer.from(text, 'utf8');
  counters.playlist.requests++;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', cache);
  res.setHeader('Content-Length', String(body.length));
  if (res.req.method === 'HEAD') return void res.end();
  counters.playlist.bytes += body.length;
  res.end(body);
}

export function sendJson(
  res: Response,
  counters: ChannelCounters | undefined,
  value: unknown,
  cache: string,
  kind: ByteKind = 'metadata',
): void {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  res.setHeader('Content-Type', TYPES.json);
  res.setHeader('Cache-Control', cache);
  res.setHeader('Content-Length', String(body.length));
  if (counters) counters[kind].requests++;
  if (res.req.method === 'HEAD') return void res.end();
  if (counters) counters[kind].bytes += body.length;
  res.end(body);
}

export function sendError(res: Response, status: number, message: string): void {
  const body = JSON.stringify({ error: message });
  res.status(status);
  res.setHeader('Content-Type', TYPES.json);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

/** A segment file (immutable), whole or one byte range; `opened` sees the file's stream. */
export function sendSegmentFile(
  req: Request,
  res: Response,
  counters: ChannelCounters,
  file: string,
  size: number,
  opened: (stream: fs.ReadStream) => void,
): void {
  res.setHeader('Content-Type', TYPES.ts);
  res.setHeader('Cache-Control', IMMUTABLE);
  res.setHeader('Accept-Ranges', 'bytes');
  let start = 0;
  let end = size - 1;
  const range = req.headers.range;
  if (range !== undefined) {
    const parsed = parseRange(range, size);
    if (parsed === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${size}`);
      return sendError(res, 416, 'range not satisfiable');
    }
    if (parsed) {
      [start, end] = parsed;
      res.status(206);
      res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    }
  }
  res.setHeader('Content-Length', String(end - start + 1));
  counters.segment.requests++;
  if (req.method === 'HEAD') return void res.end();
  const stream = fs.createReadStream(file, { start, end });
  opened(stream);
  stream.on('data', (chunk) => (counters.segment.bytes += chunk.length));
  stream.on('error', (err) => {
    debug('segment read failed: %s', err.message);
    res.destroy(err);
  });
  res.on('close', () => stream.destroy());
  stream.pipe(res);
}

/** One `bytes=` range (multi-range requests get the whole body, as RFC 9110 allows). */
export function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return [start, end];
}
