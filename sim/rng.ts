/**
 * Seeded randomness for the simulator: one generator per concern, each derived from the run's seed
 * and a name (`rng.fork('network')`), so adding draws in one place never shifts another's sequence.
 * The same seed gives the same run. Generator: xoshiro128** seeded by SplitMix32 over a string hash.
 */

/** FNV-1a of a string, 32 bits. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  readonly #key: string;
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** `seed`: any integer or string; `name`: what this generator is for. */
  constructor(seed: number | string, name = '') {
    this.#key = `${seed}/${name}`;
    const init = splitmix32(hash32(this.#key));
    this.#a = init();
    this.#b = init();
    this.#c = init();
    this.#d = init() | 1;
  }

  /** An independent generator for a named concern (same seed and names: same numbers). */
  fork(name: string): Rng {
    return new Rng(this.#key, name);
  }

  /** Uniform integer in [0, 2^32). */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.#b << 9) >>> 0;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal (Box–Muller). */
  normal(mean = 0, sd = 1): number {
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Exponential with the given mean. */
  exponential(mean: number): number {
    let u = 0;
    while (u === 0) u = this.next();
    return -mean * Math.log(u);
  }

  /** Log-normal from the underlying normal's mu and sigma. */
  logNormal(mu: number, sigma: number): number {
    return Math.exp(this.normal(mu, sigma));
  }

  /** Weibull with shape k and scale lambda. */
  weibull(shape: number, scale: number): number {
    let u = 0;
    while (u === 0) u = this.next();
    return scale * Math.pow(-Math.log(u), 1 / shape);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
