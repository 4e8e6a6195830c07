/**
 * Page weight (issue 11): the tracker serves the web player compressed (brotli or gzip per
 * Accept-Encoding, from the files the build precompressed), with strong ETags, 304s, `Vary` and
 * revalidation, and nothing but the files of player/dist; and the build's size report
 * (player/dist/size.json) matches the files and keeps the page's JavaScript within 1.3× of hls.js's own
 * minified build, compressed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { buildPlayer, type SizeReport } from '../../player/build/index.ts';
import type { Tracker } from '../../tracker/index.ts';
import { startTracker, stopTrackers } from '../helpers/tracker-fixture.ts';
import { decodeBody, rawRequest } from '../helpers/raw-http.ts';

const DIST = path.resolve(import.meta.dirname, '../../player/dist');
const HLS_MIN = path.resolve(import.meta.dirname, '../../node_modules/hls.js/dist/hls.min.js');
/** The target: the page's compressed JavaScript at most 1.3× hls.js's own. */
const TARGET = 1.3;

const CHROMIUM_ACCEPT = 'gzip, deflate, br, zstd';

describe('page weight: the player served compressed', { timeout: 120_000 }, () => {
  let tracker: Tracker;
  let built: SizeReport;

  before(async () => {
    built = await buildPlayer();
    tracker = await startTracker({ playerDir: DIST });
  });

  after(async () => {
    await stopTrackers();
  });

  test('scripts, style and pages go out as brotli or gzip per Accept-Encoding, decoding to the files', async () => {
    const files: [string, string, RegExp][] = [
      ['/peertv.js', 'peertv.js', /^text\/javascript; charset=utf-8$/],
      ['/app.js', 'app.js', /^text\/javascript; charset=utf-8$/],
      ['/player.css', 'player.css', /^text\/css; charset=utf-8$/],
      ['/watch/demo', 'watch.html', /^text\/html; charset=utf-8$/],
      ['/embed/demo', 'embed.html', /^text\/html; charset=utf-8$/],
      ['/', 'index.html', /^text\/html; charset=utf-8$/],
    ];
    const accepts: [string | undefined, string | undefined][] = [
      ['br', 'br'],
      ['gzip', 'gzip'],
      [CHROMIUM_ACCEPT, 'br'],
      ['br;q=0, gzip', 'gzip'],
      ['gzip;q=0.5, br;q=0.1', 'gzip'],
      ['*', 'br'],
      ['identity', undefined],
      [undefined, undefined],
    ];
    for (const [url, file, type] of files) {
      const bytes = fs.readFileSync(path.join(DIST, file));
      const etags = new Map<string | undefined, string>();
      for (const [accept, encoding] of accepts) {
        const what = `${url} with Accept-Encoding ${accept ?? '(none)'}`;
        const r = await rawRequest(tracker.url, url, accept ? { 'accept-encoding': accept } : {});
        assert.equal(r.status, 200, what);
        assert.equal(r.headers['content-encoding'], encoding, what);
        assert.match(r.headers['content-type'] ?? '', type, what);
        assert.equal(Number(r.headers['content-length']), r.body.length, `${what}: Content-Length`);
        assert.ok(decodeBody(r).equals(bytes), `${what}: decodes to ${file}`);
        if (encoding)
          assert.ok(r.body.length < bytes.length * 0.5, `${what}: ${r.body.length} of ${bytes.length} B`);
        assert.match(r.headers.vary ?? '', /(^|,\s*)Accept-Encoding(\s*,|$)/i, `${what}: Vary`);
        assert.match(r.headers.etag ?? '', /^"[^"]+"$/, `${what}: a strong ETag`);
        assert.match(r.headers['cache-control'] ?? '', /no-cache/, `${what}: revalidated (stable names)`);
        const seen = etags.get(encoding);
        if (seen) assert.equal(r.headers.etag, seen, `${what}: one ETag per encoding`);
        etags.set(encoding, r.headers.etag!);
      }
      assert.equal(new Set(etags.values()).size, 3, `${url}: br, gzip and identity have distinct ETags`);
    }
    // What goes out is what the build reported.
    const br = await rawRequest(tracker.url, '/peertv.js', { 'accept-encoding': 'br' });
    assert.equal(br.body.length, built.files['peertv.js']!.brotliBytes);
  });

  test('If-None-Match gets a 304 without a body; another tag or encoding gets the file; HEAD', async () => {
    const first = await rawRequest(tracker.url, '/peertv.js', { 'accept-encoding': 'br' });
    const etag = first.headers.etag!;
    const again = await rawRequest(tracker.url, '/peertv.js', {
      'accept-encoding': 'br',
      'if-none-match': etag,
    });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    assert.equal(again.headers.etag, etag);
    assert.match(again.headers.vary ?? '', /Accept-Encoding/i);
    assert.equal(again.headers['cache-control'], first.headers['cache-control']);
    for (const inm of [`W/${etag}`, `"nope", ${etag}`, '*'])
      assert.equal(
        (await rawRequest(tracker.url, '/peertv.js', { 'accept-encoding': 'br', 'if-none-match': inm }))
          .status,
        304,
        inm,
      );
    const other = await rawRequest(tracker.url, '/peertv.js', {
      'accept-encoding': 'br',
      'if-none-match': '"not-this-one"',
    });
    assert.equal(other.status, 200);
    assert.equal(other.body.length, first.body.length);
    // The brotli tag does not validate the gzip body.
    const gz = await rawRequest(tracker.url, '/peertv.js', {
      'accept-encoding': 'gzip',
      'if-none-match': etag,
    });
    assert.equal(gz.status, 200);
    assert.equal(gz.headers['content-encoding'], 'gzip');
    const head = await rawRequest(tracker.url, '/peertv.js', { 'accept-encoding': 'br' }, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], first.headers['content-length']);
    assert.equal(head.headers.etag, etag);
  });

  test('only files of player/dist: no traversal, no dot-files, precompressed files not by name', async () => {
    const pkg = fs.readFileSync(path.resolve(import.meta.dirname, '../../package.json'), 'utf8');
    const stamp = fs.readFileSync(path.join(DIST, '.build-stamp'), 'utf8');
    for (const p of [
      '/../package.json',
      '/%2e%2e/package.json',
      '/..%2fpackage.json',
      '/%2e%2e%2fpackage.json',
      '/%2e%2e%2f%2e%2e%2fpackage.json',
      '/..%5cpackage.json',
      '/player/../../package.json',
      '//etc/passwd',
      '/%2fetc%2fpasswd',
      '/.build-stamp',
      '/%2ebuild-stamp',
      '/peertv.js.br',
      '/peertv.js.gz',
      '/peertv.js%00',
      '/peertv.js%00.map',
      '/%E0%A4%A',
      '/nosuch.js',
      '/watch/..%2f..%2fpackage.json',
      '/dashboard/..%2f..%2fpackage.json',
    ]) {
      const r = await rawRequest(tracker.url, p, { 'accept-encoding': 'identity' });
      assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
      const text = r.body.toString('utf8');
      assert.ok(!text.includes(pkg.slice(0, 40)) && !text.includes(stamp) && !text.includes('root:'), p);
    }
    const post = await rawRequest(tracker.url, '/peertv.js', {}, 'POST');
    assert.equal(post.status, 404);
    // Source maps are served (not precompressed: they are for developers).
    const map = await rawRequest(tracker.url, '/peertv.js.map', { 'accept-encoding': 'identity' });
    assert.equal(map.status, 200);
    assert.match(map.headers['content-type'] ?? '', /^application\/json/);
  });

  test(`size report: matches the files, and the page's JavaScript is ≤ ${TARGET}× hls.js compressed`, () => {
    const report = JSON.parse(fs.readFileSync(path.join(DIST, 'size.json'), 'utf8')) as SizeReport;
    assert.deepEqual(report, built, 'size.json is what buildPlayer returned');
    const size = (f: string) => fs.statSync(path.join(DIST, f)).size;
    for (const f of ['peertv.js', 'app.js']) {
      assert.deepEqual(
        report.files[f],
        { rawBytes: size(f), gzipBytes: size(`${f}.gz`), brotliBytes: size(`${f}.br`) },
        `${f}: the report's figures are the files'`,
      );
    }
    const sum = (k: 'rawBytes' | 'gzipBytes' | 'brotliBytes') =>
      report.files['peertv.js']![k] + report.files['app.js']![k];
    assert.deepEqual(report.pageJs, {
      rawBytes: sum('rawBytes'),
      gzipBytes: sum('gzipBytes'),
      brotliBytes: sum('brotliBytes'),
    });
    // hls.js's own build, compressed the same way here.
    const hls = fs.readFileSync(HLS_MIN);
    assert.equal(report.hlsJs.rawBytes, hls.length);
    assert.equal(report.hlsJs.gzipBytes, zlib.gzipSync(hls, { level: report.gzipLevel }).length);
    const hlsBr = zlib.brotliCompressSync(hls, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: report.brotliQuality,
        [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: hls.length,
      },
    }).length;
    assert.equal(report.hlsJs.brotliBytes, hlsBr);

    const gzipRatio = report.pageJs.gzipBytes / report.hlsJs.gzipBytes;
    const brotliRatio = report.pageJs.brotliBytes / report.hlsJs.brotliBytes;
    const figures = `page JS ${report.pageJs.gzipBytes} B gzip, ${report.pageJs.brotliBytes} B brotli; hls.js ${report.hlsJs.gzipBytes} / ${report.hlsJs.brotliBytes}`;
    assert.ok(gzipRatio <= TARGET, `gzip ${gzipRatio.toFixed(2)}× (${figures})`);
    assert.ok(brotliRatio <= TARGET, `brotli ${brotliRatio.toFixed(2)}× (${figures})`);
    assert.equal(report.withinTarget, true);

    // No schema library in the browser: zod stays with the tracker.
    for (const f of ['peertv.js', 'app.js']) {
      assert.ok(report.composition[f], `${f}: composition reported`);
      assert.equal(report.composition[f]!.zod, undefined, `${f} has no zod`);
      assert.ok(!fs.readFileSync(path.join(DIST, f), 'utf8').includes('ZodError'), `${f} has no zod`);
    }
    assert.ok((report.composition['peertv.js']!['hls.js'] ?? 0) > 100_000, 'hls.js is in peertv.js');
  });
});
