/**
 * StaticFiles on a scratch directory: precompressed siblings are used only when they decode to the
 * file, small files without one are compressed in memory, large ones go out as they are; changes on
 * disk are picked up; symlinks out of the directory, dot-files and oversized files are not served.
 * (test/player/page-weight.test.ts covers the tracker serving the real player/dist.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { StaticFiles } from '../../tracker/index.ts';
import { decodeBody, rawRequest } from '../helpers/raw-http.ts';

const text = (n: number, seed: string) =>
  Array.from({ length: n }, (_, i) => `${seed} line ${i} ${(i * 7919) % 1000}\n`).join('');

describe('StaticFiles', () => {
  let dir: string;
  let outside: string;
  let server: http.Server;
  let base: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-static-'));
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'peertv-outside-'));
    fs.writeFileSync(path.join(dir, 'a.js'), text(200, 'a'));
    fs.writeFileSync(path.join(dir, 'b.js'), text(200, 'b'));
    // Stale siblings: an earlier build's, and one that decodes to more than the file (a bomb, bounded).
    fs.writeFileSync(path.join(dir, 'b.js.br'), zlib.brotliCompressSync(text(200, 'old')));
    fs.writeFileSync(path.join(dir, 'b.js.gz'), zlib.gzipSync(text(400, 'b')));
    fs.writeFileSync(path.join(dir, 'big.map'), text(4000, 'map'));
    fs.writeFileSync(path.join(dir, 'tiny.txt'), 'small');
    fs.writeFileSync(path.join(dir, 'blob.bin'), Buffer.alloc(1000, 7));
    fs.writeFileSync(path.join(dir, 'huge.js'), text(6000, 'huge'));
    fs.writeFileSync(path.join(dir, '.secret'), 'secret');
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'index.html'), text(50, '<p>sub</p>'));
    fs.writeFileSync(path.join(outside, 'secret.js'), 'outside secret');
    fs.symlinkSync(path.join(outside, 'secret.js'), path.join(dir, 'link.js'));
    const files = new StaticFiles(dir, { compressUpToBytes: 64 * 1024, maxFileBytes: 100_000 });
    server = http.createServer((req, res) => {
      res.setHeader('Vary', 'Origin');
      files.handler(req, res, (err) => {
        res.statusCode = err ? 500 : 404;
        res.end('no such file');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  const get = (p: string, accept = 'br, gzip', extra: Record<string, string> = {}) =>
    rawRequest(base, p, { 'accept-encoding': accept, ...extra });

  test('files without a precompressed sibling are compressed in memory; Vary is added to what was there', async () => {
    const want = fs.readFileSync(path.join(dir, 'a.js'));
    for (const [accept, enc] of [
      ['br', 'br'],
      ['gzip', 'gzip'],
      ['x-gzip', 'gzip'],
      ['deflate', undefined],
    ] as const) {
      const r = await get('/a.js', accept);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], enc, accept);
      assert.ok(decodeBody(r).equals(want));
      assert.equal(r.headers.vary, 'Origin, Accept-Encoding');
    }
  });

  test('a sibling that does not decode to the file is not used', async () => {
    const want = fs.readFileSync(path.join(dir, 'b.js'));
    for (const accept of ['br', 'gzip']) {
      const r = await get('/b.js', accept);
      assert.equal(r.status, 200);
      assert.ok(decodeBody(r).equals(want), `${accept}: the current file, not the stale sibling`);
    }
    // Once the build writes good siblings, those are served (they are smaller than quality 9).
    const br = zlib.brotliCompressSync(want, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } });
    fs.writeFileSync(path.join(dir, 'b.js.br'), br);
    const r = await get('/b.js', 'br');
    assert.ok(r.body.equals(br));
  });

  test('large files without a sibling and tiny or binary files go out as they are', async () => {
    for (const [p, type] of [
      ['/big.map', 'application/json; charset=utf-8'],
      ['/tiny.txt', 'text/plain; charset=utf-8'],
      ['/blob.bin', 'application/octet-stream'],
    ]) {
      const r = await get(p!);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-encoding'], undefined, p);
      assert.equal(r.headers['content-type'], type, p);
      assert.equal(r.headers.vary, 'Origin', `${p}: nothing varies`);
      assert.ok(r.body.equals(fs.readFileSync(path.join(dir, p!))));
    }
  });

  test('a change on disk is served at once, with a new ETag', async () => {
    const before = await get('/a.js', 'br');
    fs.writeFileSync(path.join(dir, 'a.js'), text(210, 'a2'));
    const afterChange = await get('/a.js', 'br', { 'if-none-match': before.headers.etag! });
    assert.equal(afterChange.status, 200);
    assert.notEqual(afterChange.headers.etag, before.headers.etag);
    assert.ok(decodeBody(afterChange).equals(fs.readFileSync(path.join(dir, 'a.js'))));
    const cached = await get('/a.js', 'br', { 'if-none-match': afterChange.headers.etag! });
    assert.equal(cached.status, 304);
  });

  test('index files, and nothing outside the directory, hidden, oversized or misnamed', async () => {
    const sub = await get('/sub/');
    assert.equal(sub.status, 200);
    assert.match(decodeBody(sub).toString(), /<p>sub<\/p>/);
    assert.equal((await get('/sub')).status, 404, 'a directory is not a file');
    for (const p of [
      '/link.js',
      '/.secret',
      '/huge.js',
      '/b.js.br',
      '/sub/../.secret',
      '/sub/%2e%2e/.secret',
      '/%2e%2e/' + path.basename(outside) + '/secret.js',
      '/a.js/',
      '/a.js\\..\\.secret',
    ]) {
      const r = await get(p);
      assert.equal(r.status, 404, p);
      assert.equal(r.body.toString(), 'no such file', p);
    }
    assert.throws(() => new StaticFiles(dir).send({} as never, {} as never, () => {}, '../x'), TypeError);
  });
});
