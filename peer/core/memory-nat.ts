/**
 * NAT rules of the in-memory network (memory-transport.ts): which pairs of peers ICE connects
 * directly (protocol/nat.ts has the table), which need a TURN relay, and the candidate pair a link
 * reports through `route()`.
 *
 * When a pair needs TURN, the relaying side is every `udp-blocked` side, otherwise the one symmetric
 * side (the initiator when both are). One relay serves the link: the one of the first relaying side
 * (initiator first); its latency and its shared capacity are added to the path.
 */
import { natBehaviour as behaviour, type NatType } from '../../protocol/index.ts';
export { connectsDirectly } from '../../protocol/index.ts';
import type { CandidateType, LinkRoute } from './seams.ts';

/** A TURN relay: a shared FIFO of `uploadBytesPerS` plus `latencyMs` of detour on every relayed path. */
export interface TurnRelayConfig {
  id: string;
  /** Capacity shared by every relayed link through it, both directions (bytes/s; Infinity = unlimited). */
  uploadBytesPerS: number;
  /** Added to the one-way latency of every relayed path (ms). */
  latencyMs: number;
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
