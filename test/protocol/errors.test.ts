/**
 * The error codes: every code of the unions in protocol/errors.ts has one row in the README's "Error
 * codes" table and the table lists no other; the carriers keep their classes; a misspelt code does not
 * compile (the `@ts-expect-error` lines fail the type check if it ever does).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  ENGINE_ERROR_CODES,
  ERROR_CODE_GROUPS,
  PeerTvError,
  PLAYER_NOTICE_CODES,
  SEGMENT_REJECT_REASONS,
  WireError,
  decodeMessage,
  isErrorCode,
  type EngineErrorCode,
  type ErrorCode,
  type LinkCloseReason,
  type PlayerNoticeCode,
  type SegmentRejectReason,
} from '../../protocol/index.ts';
import { EngineError } from '../../peer/core/engine-options.ts';
import { Refusal } from '../../tracker/refusal.ts';

const README = path.resolve(import.meta.dirname, '../../README.md');

/** The code of each row of the README's "Error codes" table, in order. */
function readmeTableCodes(): string[] {
  const text = fs.readFileSync(README, 'utf8');
  const start = text.indexOf('\n### Error codes\n');
  assert.ok(start >= 0, 'README has an "Error codes" section');
  const section = text.slice(start + 1).split(/\n#{2,3} /)[0]!;
  const lines = section.split('\n');
  const header = lines.findIndex((l) => /^\|\s*code\s*\|/.test(l));
  assert.ok(header >= 0, 'the section has a table whose first column is "code"');
  const codes: string[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cell = line.split('|')[1]!.trim();
    const m = /^`([a-z0-9-]+)`$/.exec(cell);
    assert.ok(m, `one code per row, in backticks: ${cell}`);
    codes.push(m[1]!);
  }
  return codes;
}

const allCodes = (): Set<string> => new Set(Object.values(ERROR_CODE_GROUPS).flat());

describe('error codes', () => {
  test('every code of the unions has a row in the README table, and the table has no other', () => {
    const rows = readmeTableCodes();
    const duplicates = rows.filter((c, i) => rows.indexOf(c) !== i);
    assert.deepEqual(duplicates, [], 'one row per code');
    const table = new Set(rows);
    const codes = allCodes();
    assert.deepEqual(
      [...codes].filter((c) => !table.has(c)),
      [],
      'codes missing from the README table',
    );
    assert.deepEqual(
      rows.filter((c) => !codes.has(c)),
      [],
      'README rows that no union has',
    );
  });

  test('each group lists a code once', () => {
    for (const [name, codes] of Object.entries(ERROR_CODE_GROUPS))
      assert.equal(new Set(codes).size, codes.length, name);
  });

  test('one name per condition: a tracker that cannot be reached is tracker-unreachable everywhere', () => {
    assert.ok(isErrorCode(ENGINE_ERROR_CODES, 'tracker-unreachable'));
    assert.ok(isErrorCode(PLAYER_NOTICE_CODES, 'tracker-unreachable'));
    assert.ok(!allCodes().has('tracker-unavailable'));
  });

  test('the carriers are PeerTvErrors with their code, and keep their own classes', () => {
    const e = new EngineError('origin-unavailable', 'HTTP 503');
    assert.ok(e instanceof EngineError && e instanceof PeerTvError && e instanceof Error);
    assert.equal(e.code, 'origin-unavailable');
    assert.equal(e.message, 'HTTP 503');
    const r = new Refusal('not-joined', 'join a channel first');
    assert.ok(r instanceof Refusal && r instanceof PeerTvError);
    assert.equal(r.code, 'not-joined');
    assert.throws(
      () => decodeMessage(new Uint8Array([0xff])),
      (err: unknown) => err instanceof WireError && err instanceof PeerTvError && err.name === 'WireError',
    );
  });

  test('isErrorCode checks a code that came from outside the type system', () => {
    assert.ok(isErrorCode(SEGMENT_REJECT_REASONS, 'segment-hash-mismatch'));
    assert.ok(!isErrorCode(SEGMENT_REJECT_REASONS, 'segment-hash-mismatc'));
    assert.ok(!isErrorCode(PLAYER_NOTICE_CODES, undefined));
    assert.ok(!isErrorCode(PLAYER_NOTICE_CODES, 42));
  });

  test('a misspelt code does not compile', () => {
    // @ts-expect-error the engine's old name for tracker-unreachable
    const engine: EngineErrorCode = 'tracker-unavailable';
    // @ts-expect-error not a segment-rejected reason
    const rejected: SegmentRejectReason = 'hash-mismatch';
    // @ts-expect-error not a player notice
    const notice: PlayerNoticeCode = 'tracker-down';
    // @ts-expect-error a link close reason's code before the colon is checked
    const closed: LinkCloseReason = 'webrtc-eror: ICE failed';
    const fine: LinkCloseReason = 'webrtc-error: ICE failed';
    // @ts-expect-error not a code of any group
    const any: ErrorCode = 'peer-misbehaved';
    // @ts-expect-error EngineError carries engine codes only
    const refused = new EngineError('tracker-full', 'x');
    assert.ok([engine, rejected, notice, closed, fine, any, refused].length > 0);
  });
});
