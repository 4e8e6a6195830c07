/**
 * Run inside a lab namespace: headless Chromium gathers ICE candidates with one STUN server and
 * prints them as a JSON array of `candidate:` strings. Usage: chromium-candidates.ts IP:PORT
 */
import { launchChromium } from '../helpers/browser.ts';

const server = process.argv[2] ?? '';
if (!/^\d+\.\d+\.\d+\.\d+:\d+$/.test(server)) {
  console.error('usage: chromium-candidates.ts IP:PORT');
  process.exit(2);
}
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const candidates = await page.evaluate(async (url: string) => {
    const pc = new RTCPeerConnection({ iceServers: [{ urls: url }] });
    pc.createDataChannel('probe');
    const out: string[] = [];
    const done = new Promise<void>((resolve) => {
      pc.onicecandidate = (e) => {
        if (e.candidate) out.push(e.candidate.candidate);
        else resolve();
      };
      setTimeout(resolve, 10_000);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await done;
    pc.close();
    return out;
  }, `stun:${server}`);
  console.log(JSON.stringify(candidates));
} finally {
  await browser.close();
}
