/**
 * Static files (the web player's `player/dist`, the dashboard), compressed: each file goes out as
 * brotli or gzip when the client accepts it, from the `.br` / `.gz` file the build wrote next to it
 * (player/build), or compressed once in memory for small files that have none (the
 * dashboard). Every response carries a strong ETag (a hash of the bytes sent; one per encoding),
 * `Vary: Accept-Encoding` when the file has an encoded form, a Content-Type and a Content-Length, and
 * `If-None-Match` gets a 304.
 *
 * Only files that exist under the directory are served: paths are matched against a narrow alphabet
 * (no `..`, no dot-files such as `.build-stamp`, no backslashes or NULs), resolved, and checked to stay
 * inside the directory after symlinks; the `.br` / `.gz` files themselves are never served by name, and
 * a precompressed file is used only if it decompresses to the current file's bytes (a half-finished
 * rebuild never serves stale JavaScript). Files are read once and kept in memory until they change on
 * disk (checked with one `stat` per file per request); larger than `maxFileBytes`: not served.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

export interface StaticFilesOptions {
  /**
   * `Cache-Control` of every response. The default makes caches revalidate on each use: our files
   * keep stable names (`/peertv.js` is the URL third-party pages embed, and a page and its scripts must
   * change together at a deploy), so a long `max-age` would pin old code in browsers for its whole
   * lifetime. Revalidation costs one round trip answered by a bodiless 304. (Content-hashed file names
   * would take `public, max-age=31536000, immutable` instead; we have none.)
   */
  cacheControl: string;
  /** Served for a path ending in `/` (undefined: such paths are not served). */
  index: string | undefined;
  /** Files larger than this are not served (they would be held in memory). */
  maxFileBytes: number;
  /**
   * Compressible files without a precompressed sibling and at most this large are compressed once in
   * memory (0: never). Larger ones go out uncompressed (source maps).
   */
  compressUpToBytes: number;
}

export const DEFAULT_STATIC_FILES: StaticFilesOptions = {
  cacheControl: 'public, no-cache',
  index: 'index.html',
  maxFileBytes: 16 * 1024 * 1024,
  compressUpToBytes: 256 * 1024,
};

type Encoding = 'br' | 'gzip';
/** File suffix of each encoding's precompressed sibling, in order of preference. */
const SIBLINGS: readonly (readonly [Encoding, string])[] = [
  ['br', '.br'],
  ['gzip', '.gz'],
];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set([
  '.html',
  '.js',
  '.mjs',
  '.css',
  '.json',
  '.map',
  '.svg',
  '.txt',
  '.webmanifest',
]);
/** Not worth an encoding below this (headers and framing eat the gain). */
const MIN_COMPRESS_BYTES = 256;

/** One path segment: no leading dot (so no `.`, `..` or dot-files), a narrow alphabet, bounded. */
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const MAX_DEPTH = 8;

interface Representation {
  body: Buffer;
  etag: string;
}

interface Entry {
  type: string;
  identity: Representation;
  encoded: Map<Encoding, Representation>;
}

const brotli = promisify(zlib.brotliCompress);
const unbrotli = promisify(zlib.brotliDecompress);
const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);

type Next = (err?: unknown) => void;

export class StaticFiles {
  readonly #root: string;
  readonly #opts: StaticFilesOptions;
  #realRoot: Promise<string> | undefined;
  /**
   * Files read, by relative path, with the identity (inode, size, mtime) of the file and its siblings
   * they were read from: when any of them changes on disk, the file is read again.
   */
  readonly #entries = new Map<string, { signature: string; entry: Promise<Entry | undefined> }>();

  constructor(root: string, opts: Partial<StaticFilesOptions> = {}) {
    this.#root = path.resolve(root);
    this.#opts = { ...DEFAULT_STATIC_FILES, ...opts };
    if (!(this.#opts.maxFileBytes > 0)) throw new RangeError('maxFileBytes must be positive');
    if (!(this.#opts.compressUpToBytes >= 0)) throw new RangeError('compressUpToBytes must be ≥ 0');
  }

  /** Middleware: GET and HEAD of a file under the directory; anything else goes to `next`. */
  readonly handler = (req: IncomingMessage, res: ServerResponse, next: Next): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const rel = this.#relativePath(req.url ?? '');
    if (rel === undefined) return next();
    this.#serve(req, res, next, rel);
  };

  /** Serves one file of the directory (e.g. a page for a route); `next()` when it does not exist. */
  send(req: IncomingMessage, res: ServerResponse, next: Next, file: string): void {
    const segments = file.split('/');
    if (!segments.every((s) => SEGMENT.test(s))) throw new TypeError(`not a servable file name: ${file}`);
    this.#serve(req, res, next, segments.join('/'));
  }

  /** The request's path as a relative file path, or undefined if it may not name a file here. */
  #relativePath(url: string): string | undefined {
    const q = url.search(/[?#]/);
    const raw = q < 0 ? url : url.slice(0, q);
    let pathname: string;
    try {
      pathname = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (!pathname.startsWith('/') || pathname.includes('\\') || pathname.includes('\0')) return undefined;
    const segments = pathname.slice(1).split('/');
    if (segments.at(-1) === '') {
      if (this.#opts.index === undefined) return undefined;
      segments[segments.length - 1] = this.#opts.index;
    }
    if (segments.length > MAX_DEPTH || !segments.every((s) => SEGMENT.test(s))) return undefined;
    const name = segments.at(-1)!;
    if (SIBLINGS.some(([, suffix]) => name.endsWith(suffix))) return undefined;
    return segments.join('/');
  }

  #serve(req: IncomingMessage, res: ServerResponse, next: Next, rel: string): void {
    this.#entry(rel).then(
      (entry) => {
        if (!entry) return next();
        respond(req, res, entry, this.#opts.cacheControl);
      },
      (err: unknown) => next(err),
    );
  }

  async #entry(rel: string): Promise<Entry | undefined> {
    const file = path.join(this.#root, ...rel.split('/'));
    const inside = path.relative(this.#root, file);
    if (inside.startsWith('..') || path.isAbsolute(inside)) return undefined;
    const stats = await Promise.all(
      [file, ...SIBLINGS.map(([, suffix]) => file + suffix)].map((f) =>
        fs.promises.stat(f).catch(() => undefined),
      ),
    );
    const main = stats[0];
    if (!main?.isFile() || main.size > this.#opts.maxFileBytes) {
      this.#entries.delete(rel);
      return undefined;
    }
    const signature = stats.map((s) => (s?.isFile() ? `${s.ino}:${s.size}:${s.mtimeMs}` : '-')).join('|');
    const cached = this.#entries.get(rel);
    if (cached?.signature === signature) return cached.entry;
    const entry = this.#load(file);
    const slot = { signature, entry };
    this.#entries.set(rel, slot);
    entry.catch(() => {
      if (this.#entries.get(rel) === slot) this.#entries.delete(rel);
    });
    return entry;
  }

  async #load(file: string): Promise<Entry | undefined> {
    // The file must resolve inside the directory after symlinks.
    this.#realRoot ??= fs.promises.realpath(this.#root);
    const [realRoot, real] = await Promise.all([
      this.#realRoot,
      fs.promises.realpath(file).catch(() => undefined),
    ]);
    if (!real) return undefined;
    const inside = path.relative(realRoot, real);
    if (inside.startsWith('..') || path.isAbsolute(inside)) return undefined;
    const body = await fs.promises.readFile(real).catch(() => undefined);
    if (!body || body.length > this.#opts.maxFileBytes) return undefined;
    const ext = path.extname(file).toLowerCase();
    const hash = crypto.createHash('sha256').update(body).digest('base64url').slice(0, 27);
    const entry: Entry = {
      type: TYPES[ext] ?? 'application/octet-stream',
      identity: { body, etag: `"${hash}"` },
      encoded: new Map(),
    };
    if (!COMPRESSIBLE.has(ext) || body.length < MIN_COMPRESS_BYTES) return entry;
    for (const [encoding, suffix] of SIBLINGS) {
      const encoded =
        (await precompressed(real + suffix, encoding, body)) ??
        (body.length <= this.#opts.compressUpToBytes ? await compress(encoding, body) : undefined);
      if (encoded && encoded.length < body.length)
        entry.encoded.set(encoding, { body: encoded, etag: `"${hash}-${encoding}"` });
    }
    return entry;
  }
}

/** A precompressed sibling, if it exists and decodes to exactly `body`. */
async function precompressed(file: string, encoding: Encoding, body: Buffer): Promise<Buffer | undefined> {
  const encoded = await fs.promises.readFile(file).catch(() => undefined);
  if (!encoded || encoded.length >= body.length) return undefined;
  // One byte more than the original is enough to tell a mismatch, and bounds a decompression bomb.
  const limit = { maxOutputLength: body.length + 1 };
  const decoded = await (encoding === 'br' ? unbrotli(encoded, limit) : gunzip(encoded, limit)).catch(
    () => undefined,
  );
  return decoded?.equals(body) ? encoded : undefined;
}

function compress(encoding: Encoding, body: Buffer): Promise<Buffer> {
  return encoding === 'br'
    ? brotli(body, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: 9,
          [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length,
        },
      })
    : gzip(body, { level: 9 });
}

function respond(req: IncomingMessage, res: ServerResponse, entry: Entry, cacheControl: string): void {
  const encoding = chooseEncoding(req.headers['accept-encoding'], entry.encoded);
  const rep = (encoding && entry.encoded.get(encoding)) ?? entry.identity;
  res.setHeader('ETag', rep.etag);
  res.setHeader('Cache-Control', cacheControl);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  if (entry.encoded.size > 0) addVary(res, 'Accept-Encoding');
  if (matches(req.headers['if-none-match'], rep.etag)) {
    res.statusCode = 304;
    res.end();
    return;
  }
  res.statusCode = 200;
  res.setHeader('Content-Type', entry.type);
  res.setHeader('Content-Length', rep.body.length);
  if (encoding) res.setHeader('Content-Encoding', encoding);
  if (req.method === 'HEAD') res.end();
  else res.end(rep.body);
}

/**
 * The best encoding the client accepts among those available (brotli, then gzip), or undefined for
 * the plain file. `Accept-Encoding: br;q=0, *` and the like are honoured; unknown tokens ignored.
 */
export function chooseEncoding(
  header: string | undefined,
  available: ReadonlyMap<Encoding, unknown>,
): Encoding | undefined {
  if (!header || available.size === 0) return undefined;
  const q = new Map<string, number>();
  for (const part of header.slice(0, 1024).split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const value = qp === undefined ? 1 : Number(qp.slice(2));
    if (name && Number.isFinite(value)) q.set(name, value);
  }
  const accepted = (e: Encoding): number =>
    q.get(e) ?? (e === 'gzip' ? q.get('x-gzip') : undefined) ?? q.get('*') ?? 0;
  let best: Encoding | undefined;
  for (const [e] of SIBLINGS)
    if (available.has(e) && accepted(e) > 0 && (best === undefined || accepted(e) > accepted(best))) best = e;
  return best;
}

/** If-None-Match against our ETag (weak comparison, as RFC 9110 asks for this header). */
function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header
    .slice(0, 8192)
    .split(',')
    .some((t) => t.trim().replace(/^W\//, '') === etag);
}

function addVary(res: ServerResponse, field: string): void {
  const prev = res.getHeader('Vary');
  const list = (Array.isArray(prev) ? prev.join(',') : String(prev ?? ''))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!list.some((f) => f.toLowerCase() === field.toLowerCase() || f === '*')) list.push(field);
  res.setHeader('Vary', list.join(', '));
}
