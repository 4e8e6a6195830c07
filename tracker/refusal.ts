/** A request the tracker refuses, with the stable code the client gets in its error acknowledgement. */
import type { TrackerErrorCode } from '../protocol/index.ts';

export class Refusal extends Error {
  constructor(
    readonly code: TrackerErrorCode,
    message: string,
  ) {
    super(message);
  }
}
