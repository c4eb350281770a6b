// How `stockline validate` and `stockline replay` read their input, in process: line numbers, BOM, CRLF,
// the {"events": [...]} wrapping, the events API's pages, and input larger than one string may hold.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants } from 'node:buffer';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateCommand } from '../../src/cli/validate.js';
import { replayCommand } from '../../src/cli/replay.js';
import { inputLimits } from '../../src/cli/input.js';

const validLines = readFileSync('test/fixtures/events/valid.ndjson', 'utf8').split('\n').filter((line) => line !== '');
const [firstEvent] = validLines as [string];

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'stockline-cli-input-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

type Command = (args: string[], io: { stdout: (text: string) => void; stderr: (text: string) => void; stdin: NodeJS.ReadableStream }) => Promise<number>;

async function runWith(command: Command, args: string[], stdin: NodeJS.ReadableStream = Readable.from([])): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await command(args, { stdout: (text) => { stdout += text; }, stderr: (text) => { stderr += text; }, stdin });
  return { code, stdout, stderr };
}

/** Runs the command on `text`, once from a file and once from stdin, and checks both answer alike. */
async function both(command: Command, text: string, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, 'input.ndjson');
  writeFileSync(file, text);
  const fromFile = await runWith(command, [file, ...args]);
  const fromStdin = await runWith(command, ['-', ...args], Readable.from([Buffer.from(text)]));
  expect(fromStdin.code).toBe(fromFile.code);
  expect(fromStdin.stderr).toBe(fromFile.stderr.replaceAll(file, 'stdin'));
  return fromStdin;
}

describe('line numbers of NDJSON errors', () => {
  it('count leading blank lines', async () => {
    const result = await both(validateCommand, `\n\n${firstEvent}\nnot json\n`);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^stockline validate: stdin, line 4: not JSON/);
  });

  it('count the lines of a file with a BOM, CRLF ends and blank lines', async () => {
    const result = await both(validateCommand, `\uFEFF\r\n${firstEvent}\r\n\r\n{"id":\r\n`);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^stockline validate: stdin, line 4: not JSON/);
  });

  it('are the same in replay', async () => {
    const result = await both(replayCommand, `\n${firstEvent}\n\n\n[1,\n`);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^stockline replay: stdin, line 5: not JSON/);
  });
});

describe('the forms an events file may take', () => {
  it.each([
    ['NDJSON with a BOM and CRLF ends', `\uFEFF${validLines.join('\r\n')}\r\n`],
    ['NDJSON with blank lines around', `\n\n${validLines.join('\n\n')}\n\n`],
    ['a JSON array with a BOM', `\uFEFF[${validLines.join(',\r\n')}]`],
    ['{"events": [...]} with a BOM', `\uFEFF{"events": [${validLines.join(',\n')}]}\n`],
  ])('%s is valid', async (_name, text) => {
    const result = await both(validateCommand, text);
    expect(result.stdout).toContain(`${validLines.length} valid, 0 invalid`);
    expect(result.code).toBe(0);
  });

  /** The body of GET /v1/tenants/{t}/events: the logged events, each with its position, and where to read on. */
  const page = (lines: string[]): string => JSON.stringify({ events: lines.map((line, index) => ({ position: index + 1, event: JSON.parse(line) as object })), next: lines.length });

  it.each([
    ['the body of GET /v1/tenants/{t}/events', page(validLines)],
    ['that body pretty-printed', `${JSON.stringify(JSON.parse(page(validLines)), null, 2)}\n`],
    ['a page of that body per NDJSON line', `${page(validLines.slice(0, 2))}\n${page(validLines.slice(2))}\n`],
  ])('%s is valid: its events are checked', async (_name, text) => {
    const result = await both(validateCommand, text);
    expect(result.stdout).toContain(`${validLines.length} valid, 0 invalid`);
    expect(result.code).toBe(0);
  });

  it('an invalid event in an exported page is reported at its index, as in NDJSON', async () => {
    const lines = [...validLines];
    lines[1] = JSON.stringify({ ...JSON.parse(lines[1] as string) as object, tenant: 'Not A Tenant' });
    const result = await both(validateCommand, page(lines));
    expect(result.stdout).toContain('event 1: /tenant: must match pattern');
    expect(result.code).toBe(1);
  });

  it('replay folds an exported page, in order, to the state NDJSON folds to', async () => {
    const fromPage = await both(replayCommand, page(validLines));
    const fromNdjson = await both(replayCommand, `${validLines.join('\n')}\n`);
    expect(fromPage.code).toBe(0);
    expect(fromPage.stdout).toBe(fromNdjson.stdout);
  });

  it('one event on one line is one event', async () => {
    const result = await both(validateCommand, firstEvent);
    expect(result.stdout).toContain('1 valid, 0 invalid');
  });

  it('an empty input is unreadable (exit 2)', async () => {
    for (const text of ['', '\uFEFF\r\n\n  \n']) {
      const result = await both(validateCommand, text);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/stdin is empty/);
    }
  });

  it('replay folds NDJSON with CRLF ends as it folds the array', async () => {
    const fromNdjson = await both(replayCommand, `\uFEFF${validLines.join('\r\n')}\r\n`);
    const fromArray = await both(replayCommand, `[${validLines.join(',')}]`);
    expect(fromNdjson.code).toBe(0);
    expect(fromNdjson.stdout).toBe(fromArray.stdout);
    expect(JSON.parse(fromNdjson.stdout)).toBeTypeOf('object');
  });
});

describe('input larger than one string may hold', () => {
  const invalidEvent = JSON.stringify({ ...JSON.parse(firstEvent) as object, tenant: 'Not A Tenant' });
  const eventsCount = 1000;

  /** stdin that hands out one line per chunk, as a pipe does, and tells how far it was read. */
  function lazyStdin(lines: string[]): { stdin: Readable; pulled: () => number } {
    let pulled = 0;
    const stdin = Readable.from((function* lazily() {
      for (const line of lines) {
        pulled += 1;
        yield Buffer.from(`${line}\n`);
      }
    })());
    return { stdin, pulled: () => pulled };
  }

  it('validate checks NDJSON as it reads it: the first violation is out before the input ends', async () => {
    const lines = [invalidEvent, ...Array.from({ length: eventsCount }, () => firstEvent)];
    const input = lazyStdin(lines);
    let stdout = '';
    let stdoutAtLastLine: string | undefined;
    const code = await validateCommand(['-'], {
      stdout: (text) => { stdout += text; },
      stderr: () => undefined,
      stdin: input.stdin.on('end', () => { stdoutAtLastLine ??= stdout; }),
    });
    expect(code).toBe(1);
    expect(stdout).toContain(`event 0: /tenant: must match pattern`);
    expect(stdoutAtLastLine).toContain('event 0: /tenant');
  });

  it('replay folds NDJSON as it reads it: it stops at the first invalid event without reading the rest', async () => {
    const input = lazyStdin([firstEvent, invalidEvent, ...Array.from({ length: eventsCount }, () => firstEvent)]);
    const result = await runWith(replayCommand, ['-'], input.stdin);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('event 1: /tenant');
    expect(input.pulled()).toBeLessThan(eventsCount / 2);
  });

  it('NDJSON has no size limit: many times the limit of one document is read line by line', async () => {
    const limits = { documentBytesMax: 1024 };
    const lines = Array.from({ length: eventsCount }, (_, index) => firstEvent.replace('"id":"e1"', `"id":"e${index}"`));
    const result = await runWith((args, io) => validateCommand(args, io, limits), ['-'], lazyStdin(lines).stdin);
    expect(result.stdout).toContain(`${eventsCount} valid, 0 invalid`);
    expect(result.code).toBe(0);
  });

  it.each([
    ['a pretty-printed array', `[\n${Array.from({ length: 3000 }, () => firstEvent).join(',\n')}\n]\n`, /^stockline validate: stdin: one JSON document over 524288 bytes; write one event per line \(NDJSON\)/],
    ['an array on one line', `[${Array.from({ length: 3000 }, () => firstEvent).join(',')}]\n`, /^stockline validate: stdin, line 1: longer than 524288 bytes; write one event per line \(NDJSON\)/],
    ['one NDJSON line', `${firstEvent}\n${firstEvent.replace('"source":"pg:inventory"', `"source":"${'x'.repeat(600_000)}"`)}\n`, /^stockline validate: stdin, line 2: longer than 524288 bytes/],
  ])('one JSON text over the limit (%s) is unreadable input (exit 2) with a clear message', async (_name, text, message) => {
    const limits = { documentBytesMax: 524_288 };
    const result = await runWith((args, io) => validateCommand(args, io, limits), ['-'], Readable.from([Buffer.from(text)]));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it('an expected state over the limit is unreadable input (exit 2)', async () => {
    const file = join(dir, 'big-state.json');
    writeFileSync(file, `{"tenants": {}, "padding": "${'x'.repeat(2048)}"}`);
    const result = await runWith((args, io) => replayCommand(args, io, { documentBytesMax: 1024 }), ['-', '--expect', file], Readable.from([Buffer.from(firstEvent)]));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^stockline replay: .*big-state\.json: over 1024 bytes/);
  });

  it('the limit of one document is below the longest string, so it is met before a crash', () => {
    expect(inputLimits.documentBytesMax).toBeLessThan(constants.MAX_STRING_LENGTH);
  });
});
