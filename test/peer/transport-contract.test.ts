/** The `Transport` contract suite (transport-contract.ts) against every implementation. */
import assert from 'node:assert/strict';
import { MemoryNetwork } from '../../peer/core/memory-transport.ts';
import { loadWrtc } from '../../peer/node/wrtc.ts';
import { realClock } from '../../peer/platform/clock.ts';
import { loopbackCandidatesOnly, SimplePeerTransport } from '../../peer/platform/simple-peer-transport.ts';
import { transportContract } from './transport-contract.ts';

const KiB = 1024;

// The in-memory network on the real clock, with a finite upload so that bufferedAmount grows.
let network: MemoryNetwork | undefined;
transportContract('MemoryNetwork', {
  setup: () => {
    network = new MemoryNetwork(realClock, {
      latencyMs: 2,
      uploadBytesPerS: 32 * 1024 * KiB,
      lowWaterMarkBytes: 256 * KiB,
    });
    return {
      a: network.transport('a'),
      b: network.transport('b'),
      lowWaterMarkBytes: network.config.lowWaterMarkBytes,
      quietMs: 100,
    };
  },
  teardown: () => {
    assert.equal(network?.openLinks, 0, 'every link destroyed is forgotten by the network');
  },
});

// Real WebRTC through @roamhq/wrtc, loopback candidates only, no ICE servers.
transportContract('SimplePeerTransport (@roamhq/wrtc, loopback)', {
  setup: async () => {
    const wrtc = await loadWrtc();
    const lowWaterMarkBytes = 256 * KiB;
    const make = (): SimplePeerTransport =>
      new SimplePeerTransport({ wrtc, candidateFilter: loopbackCandidatesOnly, lowWaterMarkBytes });
    return {
      a: make(),
      b: make(),
      lowWaterMarkBytes,
      quietMs: 1000,
      checkRoute: (route) => {
        // Loopback host candidates, never relayed (stats may lag: undefined is allowed).
        if (!route) return;
        assert.equal(route.local, 'host');
        assert.ok(['host', 'prflx'].includes(route.remote), JSON.stringify(route));
        assert.equal(route.relayed, false);
      },
    };
  },
  teardown: () => {},
});
