/**
 * Which pairs of NAT types ICE connects directly, without a TURN relay: the one table the tracker's
 * overlay (never match an incompatible pair directly) and the in-memory network (peer/core/memory-nat.ts)
 * share.
 *
 * Direct connectivity (UDP hole punching with STUN-learned server-reflexive candidates, RFC 8445 /
 * RFC 4787 behaviours). `unknown` counts as a port-restricted cone, the commonest home NAT.
 *
 * |                      | open | full-cone | restricted-cone | port-restricted-cone | symmetric | udp-blocked |
 * |----------------------|------|-----------|-----------------|----------------------|-----------|-------------|
 * | open                 | yes  | yes       | yes             | yes                  | yes       | TURN        |
 * | full-cone            | yes  | yes       | yes             | yes                  | yes       | TURN        |
 * | restricted-cone      | yes  | yes       | yes             | yes                  | yes       | TURN        |
 * | port-restricted-cone | yes  | yes       | yes             | yes                  | TURN      | TURN        |
 * | symmetric            | yes  | yes       | yes             | TURN                 | TURN      | TURN        |
 * | udp-blocked          | TURN | TURN      | TURN            | TURN                 | TURN      | TURN        |
 *
 * Why: an endpoint-independent mapping (cones) keeps the address the other side learned through STUN,
 * so any filtering opened by our own outgoing checks lets the other side in. A symmetric NAT maps each
 * destination to a new port: the other side only sees it as a peer-reflexive candidate, which an
 * address-restricted filter accepts (same IP) but a port-restricted one or another symmetric NAT does
 * not. `udp-blocked` has no UDP at all: only TURN over TCP (or TLS) reaches it.
 */
import type { NatType } from './tracker-constants.ts';

export type NatBehaviour = 'open' | 'cone' | 'restricted' | 'port-restricted' | 'symmetric' | 'blocked';

export function natBehaviour(nat: NatType): NatBehaviour {
  switch (nat) {
    case 'open':
      return 'open';
    case 'full-cone':
      return 'cone';
    case 'restricted-cone':
      return 'restricted';
    case 'port-restricted-cone':
    case 'unknown':
      return 'port-restricted';
    case 'symmetric':
      return 'symmetric';
    case 'udp-blocked':
      return 'blocked';
  }
}

/** Whether ICE finds a direct (non-relayed) path between peers behind `a` and `b` (the table above). */
export function connectsDirectly(a: NatType, b: NatType): boolean {
  const x = natBehaviour(a);
  const y = natBehaviour(b);
  if (x === 'blocked' || y === 'blocked') return false;
  if (x === 'open' || x === 'cone' || y === 'open' || y === 'cone') return true;
  if (x === 'symmetric') return y === 'restricted';
  if (y === 'symmetric') return x === 'restricted';
  return true; // restricted and port-restricted cones with each other
}
