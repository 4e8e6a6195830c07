/**
 * Scenarios: who watches, how they arrive and leave, what their links can do, and how the origin and
 * the tracker behave. A scenario is a preset by name (`steady`, `flash-crowd`, `churn`,
 * `heterogeneous`, `nat-mix`, `slow-origin`, `abr`) with overrides from flags, or a JSON file in the
 * same shape (`--scenario-file my.json`: a partial {@link Scenario} over a preset named by its `base`).
 * Everything is validated here: a bad value is refused with a message naming it.
 *
 * The presets mirror `npm run bench`'s scenarios so the two can be compared: `steady` joins a viewer
 * every 500 ms, `flash-crowd` spreads all joins over 10 s (60 s at 10 000 peers: whatever `joinOverS`
 * says), `churn` replaces 20 % of the viewers every 60 s like the bench, or draws session lengths from a
 * heavy-tailed distribution (`sessions`).
 */
import { NAT_TYPES, type NatType } from '../protocol/index.ts';
import type { Rng } from './rng.ts';
import { SIM_LADDERS } from './source.ts';
import { isPolicyName, POLICY_NAMES } from '../tracker/index.ts';

/** A distribution of a positive quantity. */
export type Distribution =
  | { kind: 'fixed'; value: number }
  | { kind: 'uniform'; min: number; max: number }
  | { kind: 'exponential'; mean: number }
  | { kind: 'lognormal'; mu: number; sigma: number }
  | { kind: 'weibull'; shape: number; scale: number }
  /** Classes with shares (summing to 1) and a value each. */
  | { kind: 'classes'; classes: { share: number; value: number }[] }
  /** Bands with shares (summing to 1), uniform within each. */
  | { kind: 'bands'; bands: { share: number; min: number; max: number }[] };

export type LadderName = 'default' | 'light';

export interface Scenario {
  /** The preset it started from (and the report's `scenario=`). */
  name: string;
  /** The {@link PROFILES} entry laid over the preset (`none`: the preset's own world). */
  profile: string;
  seed: number;
  /** Viewers at the peak (joins beyond the first `peers` replace leavers under churn). */
  peers: number;
  durationS: number;
  /** Overlay policy by name (the tracker's): `random` or `chandelier`. */
  policy: string;
  ladder: LadderName;
  segmentDurationS: number;
  /** Live playlist window (segments), as the origin's `--window`. */
  windowSegments: number;
  /** Rendition every viewer plays, or `auto` (the playback model's ABR). */
  rendition: string;
  /** All viewers join evenly spread over this many seconds from the start. */
  joinOverS: number;
  /**
   * Leaves: none; `replace` (every `intervalS`, `fraction` of the viewers leave and as many new ones
   * join, as `npm run bench -- --scenario churn`); or `sessions` (each viewer stays for a drawn session
   * length, then leaves, and a new viewer arrives in its place after a drawn gap).
   */
  churn:
    | { kind: 'none' }
    | { kind: 'replace'; intervalS: number; fraction: number }
    | { kind: 'sessions'; sessionS: Distribution; gapS: Distribution };
  /**
   * Seeks: each playing viewer seeks at random times (`perMinute` on average, 0: never): back by 1 to
   * `maxBackSegments` segments into the playlist's window when at the live edge, back to the edge when
   * behind it by choice.
   */
  seeks: { perMinute: number; maxBackSegments: number };
  /** Upload capacity of each viewer, kbit/s (Infinity: unlimited, as Node peers on loopback). */
  uploadKbps: Distribution;
  /** Download capacity of each viewer, kbit/s. */
  downloadKbps: Distribution;
  /** NAT types by share (summing to 1). */
  natMix: Partial<Record<NatType, number>>;
  /** One-way latency between two peers: points on a plane this wide (ms of latency edge to edge). */
  latencySpanMs: number;
  /** Per-message jitter (ms, never reordering a link). */
  jitterMs: number;
  /** ICE + DTLS handshake time of a new link (ms). */
  handshakeMs: number;
  /** TURN relay for pairs that cannot connect directly (null: none). */
  turn: { uploadKbps: number; latencyMs: number } | null;
  /** Request latency (first byte), plus a uniform extra in [0, latencyJitterMs); egress shared fairly. */
  origin: { latencyMs: number; latencyJitterMs: number; egressKbps: number };
  tracker: { processingMs: number };
}

const steady: Scenario = {
  name: 'steady',
  profile: 'none',
  seed: 1,
  peers: 30,
  durationS: 90,
  policy: 'random',
  ladder: 'light',
  segmentDurationS: 2,
  windowSegments: 6,
  rendition: '480p',
  joinOverS: 15,
  churn: { kind: 'none' },
  seeks: { perMinute: 0, maxBackSegments: 4 },
  uploadKbps: { kind: 'fixed', value: Infinity },
  downloadKbps: { kind: 'fixed', value: Infinity },
  natMix: { open: 1 },
  latencySpanMs: 0.2,
  jitterMs: 0,
  handshakeMs: 30,
  turn: null,
  origin: { latencyMs: 1, latencyJitterMs: 0, egressKbps: Infinity },
  tracker: { processingMs: 1 },
};

/** Presets by name. Values that depend on `peers` are set by {@link scenarioFor}. */
export const PRESETS: Readonly<Record<string, Partial<Scenario>>> = {
  steady: {},
  'flash-crowd': { name: 'flash-crowd', joinOverS: 10 },
  churn: { name: 'churn', churn: { kind: 'replace', intervalS: 60, fraction: 0.2 } },
  sessions: {
    name: 'sessions',
    // Heavy-tailed session lengths, as measured in deployed P2P live systems (Weibull, shape < 1).
    churn: {
      kind: 'sessions',
      sessionS: { kind: 'weibull', shape: 0.6, scale: 300 },
      gapS: { kind: 'exponential', mean: 5 },
    },
  },
  seeks: { name: 'seeks', seeks: { perMinute: 2, maxBackSegments: 4 } },
  heterogeneous: {
    name: 'heterogeneous',
    // A share of peers uploads less than one stream's bitrate (light ladder's 480p ≈ 1.3 Mbit/s).
    uploadKbps: {
      kind: 'classes',
      classes: [
        { share: 0.3, value: 512 },
        { share: 0.4, value: 2000 },
        { share: 0.2, value: 10_000 },
        { share: 0.1, value: 50_000 },
      ],
    },
    downloadKbps: { kind: 'fixed', value: 50_000 },
    latencySpanMs: 80,
    handshakeMs: 300,
  },
  'nat-mix': {
    name: 'nat-mix',
    natMix: {
      open: 0.1,
      'full-cone': 0.2,
      'restricted-cone': 0.2,
      'port-restricted-cone': 0.3,
      symmetric: 0.2,
    },
    turn: { uploadKbps: 100_000, latencyMs: 20 },
    latencySpanMs: 80,
    handshakeMs: 300,
  },
  'slow-origin': { name: 'slow-origin', origin: { latencyMs: 150, latencyJitterMs: 0, egressKbps: 20_000 } },
  abr: {
    name: 'abr',
    rendition: 'auto',
    downloadKbps: {
      kind: 'classes',
      classes: [
        { share: 0.5, value: 1000 },
        { share: 0.5, value: 20_000 },
      ],
    },
  },
};

export const SCENARIO_NAMES = Object.keys(PRESETS);

/**
 * Profiles: what a place does to the network, the origin and the tracker, laid over any preset
 * (`--profile NAME`). `bench-2core` is the machine `npm run bench` runs on (2 cores shared by ffmpeg,
 * the origin, the tracker and 30 Node viewers on loopback): there, CPU contention, not the wire, makes
 * every request and transfer take time. Its values are fitted to the p50s of the bench's component
 * figures on this machine when quiet (results/calibrate-20261203T140250: Node viewers' engine start
 * 14–26 ms, HTTP segment load 20–32 ms, P2P 26–34 ms); the handshake and tracker times are guesses
 * (the bench measures neither). The outcome figures (offload, continuity, stalls, startup, latency)
 * are then compared, not fitted (README "Calibration").
 */
export const PROFILES: Readonly<Record<string, Partial<Scenario>>> = {
  none: {},
  'bench-2core': {
    // Data channels each way (SCTP in a Node viewer sharing the cores).
    uploadKbps: { kind: 'fixed', value: 100_000 },
    downloadKbps: { kind: 'fixed', value: 100_000 },
    jitterMs: 2,
    handshakeMs: 100,
    origin: { latencyMs: 4, latencyJitterMs: 6, egressKbps: 250_000 },
    tracker: { processingMs: 5 },
  },
};

export const PROFILE_NAMES = Object.keys(PROFILES);

export class ScenarioError extends Error {}

/** The preset `name` with `overrides` applied, validated. */
export function scenarioFor(name: string, overrides: Partial<Scenario> = {}): Scenario {
  // Own entries only: a name such as "constructor" is not a preset.
  const preset = Object.hasOwn(PRESETS, name) ? PRESETS[name] : undefined;
  if (!preset)
    throw new ScenarioError(`unknown scenario ${JSON.stringify(name)} (one of ${SCENARIO_NAMES.join(', ')})`);
  const profileName = overrides.profile ?? 'none';
  const profile = Object.hasOwn(PROFILES, profileName) ? PROFILES[profileName] : undefined;
  if (!profile)
    throw new ScenarioError(
      `unknown profile ${JSON.stringify(profileName)} (one of ${PROFILE_NAMES.join(', ')})`,
    );
  const s: Scenario = { ...steady, name, ...preset, ...profile, ...overrides, profile: profileName };
  // The origin's, tracker's and seeks' fields may be given one by one (the rest from the layers below).
  for (const k of ['origin', 'tracker', 'seeks'] as const)
    if (isObject(s[k]))
      Object.assign(s, { [k]: { ...steady[k], ...preset[k], ...profile[k], ...overrides[k] } });
  // The bench's steady pace (one viewer every 500 ms), over at most the first third of the run.
  if (overrides.joinOverS === undefined && preset.joinOverS === undefined)
    s.joinOverS = Math.max(1, Math.min(s.peers * 0.5, s.durationS / 3));
  if (name === 'flash-crowd' && overrides.joinOverS === undefined) s.joinOverS = s.peers <= 100 ? 10 : 60;
  validateScenario(s);
  return s;
}

/** A scenario file: `{ "base": "steady", …overrides }`. */
export function scenarioFromJson(text: string, overrides: Partial<Scenario> = {}): Scenario {
  let raw: unknown;
  try {
    // JSON has no Infinity: "unlimited" stands for it (capacities).
    raw = JSON.parse(text, (_key, value: unknown) => (value === 'unlimited' ? Infinity : value));
  } catch (err) {
    throw new ScenarioError(`scenario file is not JSON: ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ScenarioError('scenario file must hold a JSON object');
  const { base = 'steady', ...rest } = raw as Record<string, unknown>;
  if (typeof base !== 'string') throw new ScenarioError('scenario file: "base" must be a preset name');
  const known = new Set<string>(Object.keys(steady));
  for (const k of Object.keys(rest))
    if (!known.has(k)) throw new ScenarioError(`scenario file: unknown field ${JSON.stringify(k)}`);
  return scenarioFor(base, { ...(rest as Partial<Scenario>), ...overrides });
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new ScenarioError(what);
}

const positive = (x: unknown): boolean => typeof x === 'number' && x > 0;
const nonNegative = (x: unknown): boolean => typeof x === 'number' && x >= 0 && Number.isFinite(x);

export function validateDistribution(d: Distribution, what: string): void {
  check(isObject(d), `${what}: a distribution object`);
  switch (d.kind) {
    case 'fixed':
      return check(positive(d.value), `${what}: value must be > 0`);
    case 'uniform':
      return check(positive(d.min) && positive(d.max) && d.min <= d.max, `${what}: 0 < min ≤ max`);
    case 'exponential':
      return check(positive(d.mean) && Number.isFinite(d.mean), `${what}: mean must be > 0`);
    case 'lognormal':
      return check(Number.isFinite(d.mu) && positive(d.sigma), `${what}: finite mu, sigma > 0`);
    case 'weibull':
      return check(positive(d.shape) && positive(d.scale), `${what}: shape and scale must be > 0`);
    case 'bands': {
      check(Array.isArray(d.bands) && d.bands.length > 0, `${what}: bands must be a non-empty list`);
      for (const b of d.bands)
        check(
          nonNegative(b.share) && positive(b.min) && positive(b.max) && b.min <= b.max,
          `${what}: share ≥ 0, 0 < min ≤ max`,
        );
      const sum = d.bands.reduce((s, b) => s + b.share, 0);
      return check(Math.abs(sum - 1) < 1e-6, `${what}: shares must sum to 1 (got ${sum})`);
    }
    case 'classes': {
      check(Array.isArray(d.classes) && d.classes.length > 0, `${what}: classes must be a non-empty list`);
      for (const c of d.classes)
        check(nonNegative(c.share) && positive(c.value), `${what}: share ≥ 0, value > 0`);
      const sum = d.classes.reduce((s, c) => s + c.share, 0);
      return check(Math.abs(sum - 1) < 1e-6, `${what}: shares must sum to 1 (got ${sum})`);
    }
    default:
      throw new ScenarioError(
        `${what}: unknown distribution ${JSON.stringify((d as { kind: unknown }).kind)}`,
      );
  }
}

const isObject = (x: unknown): boolean => x !== null && typeof x === 'object' && !Array.isArray(x);

export function validateScenario(s: Scenario): void {
  check(
    typeof s.name === 'string' && /^[a-z0-9][a-z0-9_-]{0,63}$/.test(s.name),
    'name must be [a-z0-9_-], 1–64',
  );
  for (const k of ['churn', 'seeks', 'uploadKbps', 'downloadKbps', 'natMix', 'origin', 'tracker'] as const)
    check(isObject(s[k]), `${k} must be an object`);
  check(s.turn === null || isObject(s.turn), 'turn must be an object or null');
  check(Number.isSafeInteger(s.seed), 'seed must be an integer');
  check(Number.isSafeInteger(s.peers) && s.peers >= 1 && s.peers <= 100_000, 'peers must be 1–100000');
  check(positive(s.durationS) && s.durationS <= 86_400, 'duration must be > 0 and ≤ 86400 s');
  check(isPolicyName(s.policy), `unknown policy ${JSON.stringify(s.policy)} (${POLICY_NAMES.join(', ')})`);
  check(s.ladder === 'default' || s.ladder === 'light', 'ladder must be default or light');
  check(positive(s.segmentDurationS) && s.segmentDurationS <= 20, 'segment duration must be in (0, 20] s');
  check(Number.isSafeInteger(s.windowSegments) && s.windowSegments >= 2, 'window must be ≥ 2 segments');
  const names = SIM_LADDERS[s.ladder].map((r) => r.name);
  check(
    s.rendition === 'auto' || names.includes(s.rendition),
    `rendition must be auto or one of the ${s.ladder} ladder's: ${names.join(', ')}`,
  );
  check(nonNegative(s.joinOverS), 'joinOverS must be ≥ 0');
  switch (s.churn.kind) {
    case 'none':
      break;
    case 'replace':
      check(positive(s.churn.intervalS), 'churn interval must be > 0');
      check(s.churn.fraction > 0 && s.churn.fraction <= 1, 'churn fraction must be in (0, 1]');
      break;
    case 'sessions':
      validateDistribution(s.churn.sessionS, 'churn sessionS');
      validateDistribution(s.churn.gapS, 'churn gapS');
      break;
    default:
      throw new ScenarioError('churn must be none, replace or sessions');
  }
  check(
    nonNegative(s.seeks.perMinute) &&
      s.seeks.perMinute <= 60 &&
      Number.isSafeInteger(s.seeks.maxBackSegments) &&
      s.seeks.maxBackSegments >= 1,
    'seeks: perMinute 0–60, maxBackSegments ≥ 1',
  );
  validateDistribution(s.uploadKbps, 'uploadKbps');
  validateDistribution(s.downloadKbps, 'downloadKbps');
  const shares = Object.entries(s.natMix);
  check(shares.length > 0, 'natMix must name at least one NAT type');
  for (const [t, share] of shares) {
    check((NAT_TYPES as readonly string[]).includes(t), `natMix: unknown NAT type ${JSON.stringify(t)}`);
    check(nonNegative(share), `natMix: share of ${t} must be ≥ 0`);
  }
  const sum = shares.reduce((a, [, v]) => a + (v ?? 0), 0);
  check(Math.abs(sum - 1) < 1e-6, `natMix shares must sum to 1 (got ${sum})`);
  check(nonNegative(s.latencySpanMs), 'latencySpanMs must be ≥ 0');
  check(nonNegative(s.jitterMs), 'jitterMs must be ≥ 0');
  check(nonNegative(s.handshakeMs), 'handshakeMs must be ≥ 0');
  if (s.turn !== null)
    check(
      positive(s.turn.uploadKbps) && nonNegative(s.turn.latencyMs),
      'turn: uploadKbps > 0, latencyMs ≥ 0',
    );
  check(
    nonNegative(s.origin.latencyMs) && nonNegative(s.origin.latencyJitterMs) && positive(s.origin.egressKbps),
    'origin: latencyMs ≥ 0, latencyJitterMs ≥ 0, egressKbps > 0',
  );
  check(nonNegative(s.tracker.processingMs), 'tracker processingMs must be ≥ 0');
}

/** One draw of a distribution. */
export function sample(d: Distribution, rng: Rng): number {
  switch (d.kind) {
    case 'fixed':
      return d.value;
    case 'uniform':
      return rng.uniform(d.min, d.max);
    case 'exponential':
      return rng.exponential(d.mean);
    case 'lognormal':
      return rng.logNormal(d.mu, d.sigma);
    case 'weibull':
      return rng.weibull(d.shape, d.scale);
    case 'classes': {
      let u = rng.next();
      for (const c of d.classes) {
        if (u < c.share) return c.value;
        u -= c.share;
      }
      return d.classes.at(-1)!.value;
    }
    case 'bands': {
      let u = rng.next();
      let band = d.bands.at(-1)!;
      for (const b of d.bands) {
        if (u < b.share) {
          band = b;
          break;
        }
        u -= b.share;
      }
      return rng.uniform(band.min, band.max);
    }
  }
}

/** One draw of a NAT type from the mix. */
export function sampleNat(mix: Partial<Record<NatType, number>>, rng: Rng): NatType {
  let u = rng.next();
  let last: NatType = 'open';
  for (const t of NAT_TYPES) {
    const share = mix[t] ?? 0;
    if (share <= 0) continue;
    last = t;
    if (u < share) return t;
    u -= share;
  }
  return last;
}
