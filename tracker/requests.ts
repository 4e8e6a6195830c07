/**
 * A peer's requests as every transport hands them to the session core: validated with protocol's zod
 * schemas (bad input is a {@link Refusal}), then the core is called, and the answer is shaped as the
 * acknowledgement clients get. The socket.io gateway and the simulator's in-process tracker share it,
 * so a simulated peer is held to the same rules as a real one.
 */
import {
  describeIssue,
  joinRequestSchema,
  peerComplaintSchema,
  peerReportSchema,
  signalRequestSchema,
  TRACKER_PROTOCOL_VERSION,
  type Ack,
  type z,
} from '../protocol/index.ts';
import { Refusal } from './refusal.ts';
import type { JoinOrder, PeerSession, Sessions } from './sessions.ts';

/** Parses `payload` with `schema`; a {@link Refusal} `invalid-input` naming the first issue otherwise. */
export function parseInput<S extends z.ZodType>(schema: S, payload: unknown): z.infer<S> {
  const r = schema.safeParse(payload);
  if (!r.success) throw new Refusal('invalid-input', describeIssue(r.error));
  return r.data;
}

/** A join request checked as the edge checks it: protocol version, schema, one join per connection. */
export function parseJoin(session: PeerSession, payload: unknown): JoinOrder {
  if (typeof payload === 'object' && payload !== null && 'protocolVersion' in payload)
    if ((payload as { protocolVersion: unknown }).protocolVersion !== TRACKER_PROTOCOL_VERSION)
      throw new Refusal('version-mismatch', `this tracker speaks protocol ${TRACKER_PROTOCOL_VERSION}`);
  const req = parseInput(joinRequestSchema, payload);
  if (session.peerId || session.joining)
    throw new Refusal('already-joined', 'this connection already joined');
  return req;
}

/** The peer requests other than `join` (whose edge checks differ per transport), by event name. */
export const peerRequests = {
  report: (sessions: Sessions, s: PeerSession, p: unknown) =>
    sessions.report(s, parseInput(peerReportSchema, p)),
  signal: (sessions: Sessions, s: PeerSession, p: unknown) =>
    sessions.signal(s, parseInput(signalRequestSchema, p)),
  leave: (sessions: Sessions, s: PeerSession) => sessions.leave(s, 'leave'),
  'report-peer': (sessions: Sessions, s: PeerSession, p: unknown) =>
    sessions.complain(s, parseInput(peerComplaintSchema, p)),
} as const satisfies Record<string, (sessions: Sessions, s: PeerSession, payload: unknown) => Promise<void>>;

/**
 * Runs a request and answers it as clients are answered: `{ ok: true, …result }`, a {@link Refusal}'s
 * code and message, or `internal` for anything else (`failed` hears about those, and about refusals).
 */
export async function answer<T extends object>(
  run: () => Promise<T | void>,
  failed?: (err: unknown) => void,
): Promise<Ack<T>> {
  try {
    const result = await run();
    return { ok: true, ...(result ?? {}) } as Ack<T>;
  } catch (err) {
    failed?.(err);
    if (err instanceof Refusal) return { ok: false, error: { code: err.code, message: err.message } };
    return { ok: false, error: { code: 'internal', message: 'internal error' } };
  }
}
