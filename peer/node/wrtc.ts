/**
 * Node only: loads `@roamhq/wrtc`, the RTCPeerConnection implementation that `SimplePeerTransport`
 * needs outside browsers (`new SimplePeerTransport({ wrtc: await loadWrtc() })`).
 */
export async function loadWrtc(): Promise<unknown> {
  const mod = (await import('@roamhq/wrtc')) as { default?: unknown };
  return mod.default ?? mod;
}
