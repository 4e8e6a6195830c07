/** The `peertv` command: one CLI with subcommands. */
import { ConfigError } from '../source/index.ts';
import { CliError, UsageError } from './args.ts';
import { runSourceCli, SOURCE_HELP } from './source.ts';
import { runTrackerCli, TRACKER_HELP } from './tracker.ts';
import { runPeerCli, PEER_HELP } from './peer.ts';
import { runStunCli, STUN_HELP } from './stun.ts';
import { runNatCli, NAT_HELP } from './nat.ts';
import { runDemo, DEMO_HELP } from './demo.ts';
import { runSimCli, SIM_HELP } from './sim.ts';

const HELP = `Usage: peertv <command> [options]

Commands:
  source    broadcast a channel (test pattern, file or RTMP) and serve it as HLS origin
  tracker   channel directory, peer sessions, signaling relay, stats, metrics and dashboard
  peer      a headless Node viewer or relay super-peer in a channel's swarm
  stun      the STUN server (RFC 8489 Binding over UDP and TCP, RFC 5780 with --alternate)
  nat       NAT behaviour discovery: which NAT is this machine behind (RFC 5780)
  demo      the demo: a test-pattern channel on this machine
  sim       the simulator: real engines and tracker core on a simulated network, in virtual time

Run "peertv <command> --help" for a command's options.
`;

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; help: string }> = {
  source: { run: runSourceCli, help: SOURCE_HELP },
  tracker: { run: runTrackerCli, help: TRACKER_HELP },
  peer: { run: runPeerCli, help: PEER_HELP },
  stun: { run: runStunCli, help: STUN_HELP },
  nat: { run: runNatCli, help: NAT_HELP },
  demo: { run: runDemo, help: DEMO_HELP },
  sim: { run: runSimCli, help: SIM_HELP },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return name === undefined ? 1 : 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`peertv: unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    return 2;
  }
  try {
    await cmd.run(rest);
    return 0;
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(`peertv ${name}: ${err.message}`);
      return 2;
    }
    if (err instanceof CliError) {
      console.error(`peertv ${name}: ${err.message}`);
      return 1;
    }
    console.error(`peertv ${name}: ${(err as Error).stack ?? err}`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
