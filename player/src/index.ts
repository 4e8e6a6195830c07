/** The browser bundle's entry: `window.PeerTV`. */
import { attach, PeerTVPlayer, webrtcAvailable } from './api.ts';
export { attach, PeerTVPlayer, webrtcAvailable };
export const version = '0.1.0';
