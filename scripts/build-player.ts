/**
 * Builds the web player into player/dist (esbuild; everything bundled, no CDN): `peertv.js` (the
 * `PeerTV` API), `app.js` (the pages), and the static files. Skips the work when nothing changed.
 * Usage: tsx scripts/build-player.ts [--force]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as esbuild from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const dist = path.join(root, 'player/dist');
const inputs = ['player', 'peer', 'protocol'].map((d) => path.join(root, d));

function fingerprint(): string {
  const h = crypto.createHash('sha256');
  const walk = (dir: string): void => {
    for (const e of fs
      .readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (p === dist) continue;
      if (e.isDirectory()) walk(p);
      else h.update(p).update(String(fs.statSync(p).mtimeMs));
    }
  };
  inputs.forEach(walk);
  h.update(fs.readFileSync(path.join(root, 'package-lock.json')));
  return h.digest('hex');
}

export async function buildPlayer(force = false): Promise<void> {
  const stamp = path.join(dist, '.build-stamp');
  const fp = fingerprint();
  if (!force && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === fp) return;
  fs.rmSync(dist, { recursive: true, force: true });
  fs.mkdirSync(dist, { recursive: true });
  const common: esbuild.BuildOptions = {
    bundle: true,
    minify: process.env.PEERTV_NO_MINIFY !== '1',
    sourcemap: true,
    target: ['chrome110', 'firefox110', 'safari16'],
    platform: 'browser',
    format: 'iife',
    logLevel: 'warning',
    // simple-peer and its streams expect a few Node globals.
    inject: [path.join(root, 'player/src/node-shims.ts')],
    define: { 'process.env.NODE_DEBUG': 'false', global: 'globalThis' },
    external: ['@roamhq/wrtc'],
  };
  await esbuild.build({
    ...common,
    entryPoints: [path.join(root, 'player/src/index.ts')],
    outfile: path.join(dist, 'peertv.js'),
    globalName: 'PeerTV',
  });
  const app = path.join(root, 'player/src/app/main.ts');
  if (fs.existsSync(app))
    await esbuild.build({ ...common, entryPoints: [app], outfile: path.join(dist, 'app.js') });
  if (fs.existsSync(path.join(root, 'player/static')))
    fs.cpSync(path.join(root, 'player/static'), dist, { recursive: true });
  fs.writeFileSync(stamp, fp);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const t0 = performance.now();
  await buildPlayer(process.argv.includes('--force'));
  console.error(`player built in ${(performance.now() - t0).toFixed(0)} ms → player/dist`);
}
