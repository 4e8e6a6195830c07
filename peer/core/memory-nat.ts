/**
 * NAT rules of the in-memory network (memory-transport.ts): which pairs of peers ICE connects
 * directly, which need a TURN relay, and the candidate pair a link reports through `route()`.
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
 *
 * When a pair needs TURN, the relaying side is every `udp-blocked` side, otherwise the one symmetric
 * side (the initiator when both are). One relay serves the link: the one of the first relaying side
 * (initiator first); its latency and its shared capacity are added to the path.
 */
import type { NatType } from '../../protocol/index.ts';
import type { CandidateType, LinkRoute } from './seams.ts';

/** A TURN relay: a shared FIFO of `uploadBytesPerS` plus `latencyMs` of detour on every relayed path. */
export interface TurnRelayConfig {
  id: string;
  /** Capacity shared by every relayed link through it, both directions (bytes/s; Infinity = unlimited). */
  uploadBytesPerS: number;
  /** Added to the one-way latency of every relayed path (ms). */
  latencyMs: number;
}

type Behaviour = 'open' | 'cone' | 'restricted' | 'port-restricted' | 'symmetric' | 'blocked';

function behaviour(nat: NatType): Behaviour {
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
  const x = behaviour(a);
  const y = behaviour(b);
  if (x === 'blocked' || y === 'blocked') return false;
  if (x === 'open' || x === 'cone' || y === 'open' || y === 'cone') return true;
  if (x === 'symmetric') return y === 'restricted';
  if (y === 'symmetric') return x === 'restricted';
  return true; // restricted and port-restricted cones with each other
}

/** Which sides of an incompatible pair use their TURN relay: [initiator, responder]. */
export function relayingSides(initiator: NatType, responder: NatType): [boolean, boolean] {
  const a = behaviour(initiator);
  const b = behaviour(responder);
  if (a === 'blocked' || b === 'blocked') return [a === 'blocked', b === 'blocked'];
  if (a === 'symmetric') return [true, false];
  return [false, true];
}

/** The candidate a peer offers for a direct path, as the other side sees it. */
function directCandidate(nat: NatType, seenByRemote: boolean): CandidateType {
  if (nat === 'open') return 'host';
  // A symmetric NAT's mapping towards us differs from the one STUN saw: learned from its checks.
  if (seenByRemote && behaviour(nat) === 'symmetric') return 'prflx';
  return 'srflx';
}

/** The selected candidate pair from one end's point of view. */
export function routeOf(
  localNat: NatType,
  remoteNat: NatType,
  localRelays: boolean,
  remoteRelays: boolean,
): LinkRoute {
  const local: CandidateType = localRelays ? 'relay' : directCandidate(localNat, false);
  const remote: CandidateType = remoteRelays ? 'relay' : directCandidate(remoteNat, true);
  return {
    local,
    remote,
    relayed: localRelays || remoteRelays,
    protocol: localRelays && behaviour(localNat) === 'blocked' ? 'tcp' : 'udp',
  };
}
