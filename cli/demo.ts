/** `peertv demo`: everything on this machine with one command (what `npm start` runs). */
import { runSourceCli } from './source.ts';
import { parseFlags, intFlag } from './args.ts';

export const DEMO_HELP = `Usage: peertv demo [options]

Runs a test-pattern channel "demo" with a light two-rendition ladder (480p, 240p) and prints its
playlist URL. Open it in any HLS player (e.g. ffplay, VLC, Safari).

Options:
  --port N          origin port (default: 8081)
  --data-dir DIR    data directory (default: ./data)
  -h, --help        show this help
`;

export async function runDemo(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { port: { type: 'string' }, 'data-dir': { type: 'string' } });
  if (values.help) {
    process.stdout.write(DEMO_HELP);
    return;
  }
  const port = intFlag('port', values.port, 8081, 0, 65535);
  await runSourceCli([
    '--channel',
    'demo',
    '--title',
    'PeerTV demo: test pattern',
    '--ladder',
    '480p:854x480:1200:96,240p:426x240:400:64',
    '--port',
    String(port),
    '--data-dir',
    values['data-dir'] ?? 'data',
  ]);
}
