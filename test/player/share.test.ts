/** The watch page's P2P figure (a player's own share from peers over the window) and the offload label. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OwnShare, offloadText, windowLabel } from '../../player/src/app/share.ts';
import { offloadOver } from '../../tracker/index.ts';
import { OFFLOAD_WINDOW_MS, type ChannelStatsSample } from '../../protocol/index.ts';

describe('OwnShare', () => {
  test('since the start while younger than the window, then over the trailing window', () => {
    const own = new OwnShare(10_000);
    assert.equal(own.push(0, 0, 0), null, 'nothing received yet');
    assert.equal(own.push(1000, 1000, 0), 0);
    assert.equal(own.push(5000, 1000, 3000), 0.75);
    // From 10 s on the baseline is the newest sample at least 10 s old.
    assert.equal(own.push(11_000, 1000, 4000), 1, 'base at 1 s: 3000 B from peers, 0 from the origin');
    assert.equal(own.push(16_000, 2000, 4000), 1 - 1000 / 2000, 'base at 5 s');
    assert.equal(own.push(40_000, 2000, 4000), null, 'nothing received in the window');
  });

  test('counters that go back start over (a new player)', () => {
    const own = new OwnShare(10_000);
    own.push(0, 5000, 5000);
    assert.equal(own.push(1000, 100, 300), 0.75);
  });

  test('the same computation as the channel offload without origin counters', () => {
    const own = new OwnShare();
    const history: ChannelStatsSample[] = [];
    for (let t = 0; t <= 120_000; t += 7000) {
      const httpBytes = 1000 * Math.floor(t / 3000);
      const p2pBytes = 1500 * Math.floor(t / 2000);
      const sample: ChannelStatsSample = {
        at: t,
        viewers: 1,
        httpBytes,
        p2pBytes,
        uploadedBytes: 0,
        originSegmentBytes: null,
        offload: null,
        downloadKbps: 0,
        uploadKbps: 0,
      };
      assert.equal(
        own.push(t, httpBytes, p2pBytes),
        offloadOver(history, sample, OFFLOAD_WINDOW_MS),
        `at ${t}`,
      );
      history.push(sample);
    }
  });
});

test('labels: the window and the channel offload', () => {
  assert.equal(windowLabel(60_000), '60 s');
  assert.equal(windowLabel(300_000), '5 min');
  assert.equal(offloadText({ offload: 0.672, offloadWindowS: 60 }), '67% offload (last 60 s)');
  assert.equal(
    offloadText({ offload: 0.5 }),
    '50% offload (last 60 s)',
    'an older tracker: the default window',
  );
  assert.equal(offloadText({ offload: null, offloadWindowS: 30 }), '— offload (last 30 s)');
});
