/** Overlay policies by name: what `--policy` picks on the tracker, the bench and the simulator. */
import { ChandelierPolicy } from './chandelier-policy.ts';
import type { RandomSource } from './clock.ts';
import { RandomPolicy, type OverlayPolicy } from './policy.ts';

/** `random`: the baseline every figure is compared with. `chandelier`: the planner. */
export const POLICY_NAMES = ['random', 'chandelier'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export const isPolicyName = (v: unknown): v is PolicyName =>
  typeof v === 'string' && (POLICY_NAMES as readonly string[]).includes(v);

/** A policy by name, with the given time and randomness (the simulator's are virtual and seeded). */
export function createPolicy(
  name: PolicyName,
  deps: { now: () => number; random: RandomSource } = { now: () => Date.now(), random: Math.random },
): OverlayPolicy {
  switch (name) {
    case 'random':
      return new RandomPolicy({}, deps.random);
    case 'chandelier':
      return new ChandelierPolicy({}, deps);
  }
}
