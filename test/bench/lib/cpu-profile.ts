/**
 * A Chromium CPU profile (DevTools `Profiler`) attributed to the page's parts through the bundles'
 * source maps: each sample goes to the innermost frame that belongs to the page UI, the P2P engine or
 * hls.js; samples with none of those on the stack are the browser's own work (style, layout, paint,
 * GC, native code).
 */
import fs from 'node:fs';
import path from 'node:path';
import { SourceMap } from 'node:module';

export type Category = 'ui' | 'engine' | 'hls' | 'browser' | 'idle';

/** A bundle's source map: a generated position → the original file and line, and that line's text. */
export class Bundle {
  readonly #map: SourceMap;
  readonly #dir: string;
  readonly #repo: string;
  constructor(file: string) {
    this.#map = new SourceMap(JSON.parse(fs.readFileSync(`${file}.map`, 'utf8')));
    this.#dir = path.dirname(path.resolve(file));
    this.#repo = path.resolve(this.#dir, '../..');
  }
  locate(line: number, column: number): { source: string; line: number; text: string } | undefined {
    const e = this.#map.findEntry(line, column) as { originalSource?: string; originalLine?: number };
    if (e.originalSource === undefined || e.originalLine === undefined) return undefined;
    const p = this.#map.payload;
    const i = p.sources.indexOf(e.originalSource);
    const text = p.sourcesContent?.[i]?.split('\n')[e.originalLine]?.trim().slice(0, 70) ?? '';
    // Paths relative to the repository the bundle was built in (it sits in <repo>/player/dist).
    const source = path
      .relative(this.#repo, path.resolve(this.#dir, e.originalSource))
      .replace(/^(\.\.\/)+.*?(?=node_modules\/)/, ''); // a build elsewhere with linked node_modules
    return { source, line: e.originalLine + 1, text };
  }
}

export function categoryOf(source: string): Category {
  if (/(^|\/)node_modules\/hls\.js\//.test(source)) return 'hls';
  if (/(^|\/)player\/src\/app\//.test(source)) return 'ui';
  return 'engine'; // peer/, protocol/, player/src/{api,loader,index,node-shims}.ts and their libraries
}

export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

export interface Attribution {
  /** Sampled main-thread time per category (ms). */
  ms: Record<Category, number>;
  /** Self time (ms) by the innermost attributed function: "category file:line  text". */
  functions: Map<string, number>;
}

export function attribute(profile: CpuProfile, bundles: Map<string, Bundle>): Attribution {
  const parent = new Map<number, number>();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Per node: its category and the function it is charged to (memoised).
  const memo = new Map<number, { cat: Category; fn: string }>();
  const frameOf = (id: number): { cat: Category; fn: string } | undefined => {
    const cf = byId.get(id)!.callFrame;
    const file = cf.url.split(/[?#]/)[0]!.split('/').at(-1)!;
    const bundle = bundles.get(file);
    if (file === 'app.js') {
      const at = bundle?.locate(cf.lineNumber, cf.columnNumber);
      return { cat: 'ui', fn: at ? `${at.source}:${at.line}  ${at.text}` : `app.js ${cf.functionName}` };
    }
    if (!bundle) return undefined;
    const at = bundle.locate(cf.lineNumber, cf.columnNumber);
    if (!at) return { cat: 'engine', fn: `${file} ${cf.functionName}` };
    return { cat: categoryOf(at.source), fn: `${at.source}:${at.line}  ${at.text}` };
  };
  const resolve = (id: number): { cat: Category; fn: string } => {
    const hit = memo.get(id);
    if (hit) return hit;
    const name = byId.get(id)!.callFrame.functionName;
    let r: { cat: Category; fn: string };
    if (name === '(idle)') r = { cat: 'idle', fn: '(idle)' };
    else if (name === '(program)' || name === '(garbage collector)' || name === '(root)')
      r = { cat: 'browser', fn: name };
    else {
      const own = frameOf(id);
      const up = parent.get(id);
      r = own ?? (up !== undefined ? resolve(up) : { cat: 'browser', fn: `(native) ${name}` });
    }
    memo.set(id, r);
    return r;
  };
  const ms: Record<Category, number> = { ui: 0, engine: 0, hls: 0, browser: 0, idle: 0 };
  const functions = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    const r = resolve(profile.samples[i]!);
    ms[r.cat] += dt;
    if (r.cat !== 'idle') {
      const key = `${r.cat.padEnd(7)} ${r.fn}`;
      functions.set(key, (functions.get(key) ?? 0) + dt);
    }
  }
  return { ms, functions };
}
