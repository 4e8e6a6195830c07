/**
 * The rooms' boundaries (DESIGN.md): product code imports another room only through one of its public
 * faces (`index.ts`, or a sub-room's `index.ts` such as `peer/node/index.ts`), `protocol/` imports no
 * other room, and the engine's core stays portable: no Node built-in, no platform code, no wall clock.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const ROOMS = ['protocol', 'source', 'tracker', 'peer', 'player', 'stun', 'sim', 'cli', 'scripts'];
const SKIP = new Set(['node_modules', 'dist', 'static']);

function sources(dir: string): string[] {
  const out: string[] = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(e.name)) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative module specifiers of `import`/`export … from` statements and dynamic imports. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"`;]*?from\s*'([^']+)'/g)) out.push(m[1]!);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s*'([^']+)'/g)) out.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) out.push(m[1]!);
  return out.filter((s) => s.startsWith('.'));
}

const roomOf = (abs: string): string => path.relative(root, abs).split(path.sep)[0]!;
const isPublicFace = (abs: string): boolean => path.basename(abs) === 'index.ts';

describe('room boundaries', () => {
  const files = ROOMS.flatMap((r) => sources(path.join(root, r)));

  test('the scan sees the product (so an empty pass means something)', () => {
    assert.ok(files.length > 100, `only ${files.length} files scanned`);
    assert.ok(files.some((f) => f.endsWith(path.join('peer', 'core', 'engine.ts'))));
  });

  test('another room is imported only through its index.ts', () => {
    const crossings: string[] = [];
    for (const file of files) {
      const from = roomOf(file);
      for (const spec of importsOf(file)) {
        const target = path.resolve(path.dirname(file), spec);
        const to = roomOf(target);
        if (to === from) continue;
        if (!isPublicFace(target))
          crossings.push(`${path.relative(root, file)} → ${path.relative(root, target)}`);
      }
    }
    assert.deepEqual(crossings, []);
  });

  test('protocol/ imports no other room', () => {
    const out = files
      .filter((f) => roomOf(f) === 'protocol')
      .flatMap((f) => importsOf(f).map((s) => [f, path.resolve(path.dirname(f), s)] as const))
      .filter(([, t]) => roomOf(t) !== 'protocol')
      .map(([f, t]) => `${path.relative(root, f)} → ${path.relative(root, t)}`);
    assert.deepEqual(out, []);
  });

  test('peer/core is portable: no Node built-ins, no platform code, no wall clock, no global timers', () => {
    const core = files.filter((f) => f.includes(`${path.sep}peer${path.sep}core${path.sep}`));
    assert.ok(core.length >= 10);
    const problems: string[] = [];
    for (const f of core) {
      const text = fs.readFileSync(f, 'utf8');
      const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      const rel = path.relative(root, f);
      if (/from\s*'node:/.test(code)) problems.push(`${rel}: imports a Node built-in`);
      for (const spec of importsOf(f))
        if (/\/(platform|node)\//.test(spec)) problems.push(`${rel}: imports ${spec}`);
      if (/\bDate\.now\(|\bnew Date\(\)|\bperformance\.now\(/.test(code))
        problems.push(`${rel}: reads the wall clock`);
      // A call, not a method's declaration (`setTimeout(fn: () => void, ms: number)` on the Clock seam).
      if (/(?<![.\w])(setTimeout|setInterval|setImmediate)\((?![\w\s]*:)/.test(code))
        problems.push(`${rel}: uses a global timer`);
    }
    assert.deepEqual(problems, []);
  });

  test('the browser-facing faces (peer/index.ts, player/index.ts) pull in no Node-only module', () => {
    const seen = new Set<string>();
    const nodeOnly: string[] = [];
    const walk = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = fs.readFileSync(file, 'utf8');
      if (/from\s*'node:/.test(text)) nodeOnly.push(path.relative(root, file));
      for (const spec of importsOf(file)) walk(path.resolve(path.dirname(file), spec));
    };
    walk(path.join(root, 'peer/index.ts'));
    walk(path.join(root, 'player/index.ts'));
    assert.ok(seen.size > 20, `walked only ${seen.size} files`);
    assert.deepEqual(nodeOnly, []);
  });
});
