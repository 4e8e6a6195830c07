/** Test helpers for the in-memory network: a virtual-clock network, linked pairs, what a link saw. */
import { signalDataSchema, type SignalData } from '../../protocol/index.ts';
import { ManualClock } from '../../peer/core/clock.ts';
import { MemoryNetwork, type MemoryNetworkConfig } from '../../peer/core/memory-transport.ts';
import type { Clock, PeerLink } from '../../peer/core/seams.ts';

export interface Recorder {
  data: { atMs: number; bytes: Uint8Array }[];
  closes: { atMs: number; reason: string }[];
  connects: number[];
  drains: number[];
  signals: SignalData[];
}

/** Everything a link emits, with the clock's time. */
export function record(link: PeerLink, clock: Clock): Recorder {
  const r: Recorder = { data: [], closes: [], connects: [], drains: [], signals: [] };
  link.on('data', (bytes) => r.data.push({ atMs: clock.now(), bytes }));
  link.on('close', (reason) => r.closes.push({ atMs: clock.now(), reason }));
  link.on('connect', () => r.connects.push(clock.now()));
  link.on('drain', () => r.drains.push(clock.now()));
  link.on('signal', (s) => r.signals.push(s));
  return r;
}

/** Links `a` (initiator) and `b`, relaying signals at once (a tracker with no delay). */
export function pair(net: MemoryNetwork, a: string, b: string) {
  const la = net.transport(a).createLink({ localId: a, remoteId: b, initiator: true, iceServers: [] });
  const lb = net.transport(b).createLink({ localId: b, remoteId: a, initiator: false, iceServers: [] });
  la.on('signal', (s) => lb.signal(signalDataSchema.parse(s)));
  lb.on('signal', (s) => la.signal(signalDataSchema.parse(s)));
  return { la, lb, ra: record(la, net.clock), rb: record(lb, net.clock) };
}

/** A network on a fresh virtual clock. */
export function memNet(config: Partial<MemoryNetworkConfig> = {}) {
  const clock = new ManualClock();
  return { clock, net: new MemoryNetwork(clock, config) };
}
