import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  atOrigin,
  attestationUrlOf,
  originPaths,
  parseSegmentUrl,
  playlistSegmentUri,
} from '../../protocol/index.ts';

describe('the origin URL layout', () => {
  test('paths of a channel, and URLs at an origin with or without a trailing slash', () => {
    assert.equal(originPaths.channelJson('ch'), '/channels/ch/channel.json');
    assert.equal(originPaths.liveMaster('ch'), '/channels/ch/live/master.m3u8');
    assert.equal(originPaths.recordingMaster('ch', 'b 1'), '/channels/ch/recordings/b%201/master.m3u8');
    assert.equal(originPaths.segment('ch', '720p', 42), '/channels/ch/segments/720p/42.ts');
    assert.equal(originPaths.attestation('ch', '720p', 42), '/channels/ch/segments/720p/42.json');
    assert.equal(originPaths.attestationRun('ch', '720p'), '/channels/ch/attestations/720p');
    assert.equal(atOrigin('http://o:1/', '/x'), 'http://o:1/x');
    assert.equal(atOrigin('http://o:1//', '/x'), 'http://o:1/x');
    assert.equal(atOrigin('http://o:1', '/x'), 'http://o:1/x');
  });

  test('segment URIs in playlists resolve to the segment path from the live and the recorded playlist', () => {
    const base = 'http://o/channels/ch/';
    assert.equal(
      new URL(playlistSegmentUri.live('360p', 7), `${base}live/360p.m3u8`).pathname,
      originPaths.segment('ch', '360p', 7),
    );
    assert.equal(
      new URL(playlistSegmentUri.recording('360p', 7), `${base}recordings/b1/360p.m3u8`).pathname,
      originPaths.segment('ch', '360p', 7),
    );
  });

  test('a segment URL parses back to its id; its attestation lies beside it', () => {
    const url = atOrigin('http://127.0.0.1:9/', originPaths.segment('my-ch', '1080p', 123));
    assert.deepEqual(parseSegmentUrl(url), { channel: 'my-ch', rendition: '1080p', mediaSequence: 123 });
    assert.deepEqual(parseSegmentUrl(`${url}?x=1`), {
      channel: 'my-ch',
      rendition: '1080p',
      mediaSequence: 123,
    });
    assert.equal(attestationUrlOf(url), url.replace(/\.ts$/, '.json'));
    assert.equal(attestationUrlOf(`${url}?t=1`), `${url.replace(/\.ts$/, '.json')}?t=1`);
  });

  test('anything else is not a segment', () => {
    for (const bad of [
      'http://o/channels/ch/segments/720p/01.ts', // leading zero
      'http://o/channels/ch/segments/720p/-1.ts',
      'http://o/channels/ch/segments/720p/1.json',
      'http://o/channels/CH/segments/720p/1.ts', // not a channel id
      'http://o/channels/ch/segments/7 20p/1.ts',
      'http://o/channels/ch/segments/720p/99999999999999999.ts', // beyond a safe integer
      'http://o/channels/ch/live/720p.m3u8',
      'http://o/channels/ch/segments/720p/1.tsx',
    ])
      assert.equal(parseSegmentUrl(bad), undefined, bad);
  });
});
