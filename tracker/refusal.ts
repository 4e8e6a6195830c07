/** A request the tracker refuses, with the stable code the client gets in its error acknowledgement. */
import { PeerTvError, type TrackerErrorCode } from '../protocol/index.ts';

export class Refusal extends PeerTvError<TrackerErrorCode> {}
