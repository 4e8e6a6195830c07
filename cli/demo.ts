/** `peertv demo`: everything on this machine with one command (what `npm start` runs). */
import { parseFlags, intFlag } from './args.ts';
import { runSourceCli } from './source.ts';
import { startTracker } from './tracker.ts';

export const DEMO_HELP = `Usage: peertv demo [options]

Runs the tracker on http://127.0.0.1:8080 (dashboard at /dashboard) and a test-pattern channel "demo"
with a light two-rendition ladder (480p, 240p) whose origin is http://127.0.0.1:8081, registered with
the tracker. Ctrl-C ends the broadcast (the recording stays) and stops everything.

Options:
  --port N          tracker port (default: 8080); the origin takes the next one
  --data-dir DIR    data directory (default: ./data)
  -h, --help        show this help
`;

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { port: { type: 'string' }, 'data-dir': { type: 'string' } });
  if (values.help) {
    process.stdout.write(DEMO_HELP);
    return;
  }
  const port = intFlag('port', values.port, 8080, 1, 65534);
  const tracker = await startTracker('127.0.0.1', port, {});
  console.log(`tracker:   ${tracker.url}   dashboard: ${tracker.url}/dashboard`);
  try {
    await runSourceCli([
      '--channel',
      'demo',
      '--title',
      'PeerTV demo: test pattern',
      '--ladder',
      '480p:854x480:1200:96,240p:426x240:400:64',
      '--port',
      String(port + 1),
      '--data-dir',
      values['data-dir'] ?? 'data',
      '--tracker',
      tracker.url,
    ]);
  } finally {
    await tracker.destroy();
  }
}
