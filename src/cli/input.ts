// Reads JSON documents for the CLI: one value, a JSON array, or NDJSON, from a file or stdin.

import { createReadStream } from 'node:fs';

export class InputError extends Error {
  readonly code = 'UNREADABLE_INPUT';
}

export interface InputLimits {
  /**
   * The most bytes of one JSON text held in memory at once: one line of NDJSON, or a whole input that is a
   * single JSON value. Below V8's longest string (about 512 MiB), so a larger input is a clear error, not a
   * crash; NDJSON is read a line at a time and has no limit on its total size.
   */
  documentBytesMax: number;
}

export const inputLimits: InputLimits = { documentBytesMax: 256 * 1_048_576 };

/** The forms `readEvents` reads, for the usage texts of the commands that read events. */
export const eventsFileForms = 'events as NDJSON (one per line), one event, a JSON array, {"events": [...]}, or the body of\n  GET /v1/tenants/{t}/events ({"events": [{"position": …, "event": {…}}], "next": …}; its events, in order)';

const newlineByte = 0x0a;
const byteOrderMark = '\uFEFF';

function nameOf(path: string): string {
  return path === '-' ? 'stdin' : path;
}

function sizeOf(bytes: number): string {
  return bytes % 1_048_576 === 0 ? `${bytes / 1_048_576} MiB` : `${bytes} bytes`;
}

/** The bytes of the input, from a file or stdin; a file that cannot be opened or read is an `InputError`. */
async function* chunksOf(path: string, stdin: NodeJS.ReadableStream): AsyncGenerator<Buffer> {
  const stream = path === '-' ? stdin : createReadStream(path);
  try {
    for await (const chunk of stream) yield typeof chunk === 'string' ? Buffer.from(chunk) : chunk as Buffer;
  } catch (error) {
    throw new InputError(`cannot read ${path}: ${(error as Error).message}`);
  }
}

interface Line {
  /** From 1, counting every `\n`, blank lines too. */
  number: number;
  bytes: Buffer;
}

/** Splits the input at `\n` bytes (never inside a UTF-8 character); a line longer than the limit is an `InputError`. */
async function* linesOf(chunks: AsyncIterable<Buffer>, name: string, limits: InputLimits): AsyncGenerator<Line> {
  let pieces: Buffer[] = [];
  let pieceBytes = 0;
  let number = 0;
  const tooLong = (): InputError => new InputError(`${name}, line ${number + 1}: longer than ${sizeOf(limits.documentBytesMax)}; write one event per line (NDJSON)`);
  for await (const chunk of chunks) {
    let start = 0;
    let newline = chunk.indexOf(newlineByte, start);
    while (newline >= 0) {
      if (pieceBytes + newline - start > limits.documentBytesMax) throw tooLong();
      pieces.push(chunk.subarray(start, newline));
      number += 1;
      yield { number, bytes: pieces.length === 1 ? pieces[0] as Buffer : Buffer.concat(pieces) };
      pieces = [];
      pieceBytes = 0;
      start = newline + 1;
      newline = chunk.indexOf(newlineByte, start);
    }
    pieceBytes += chunk.length - start;
    if (pieceBytes > limits.documentBytesMax) throw tooLong();
    pieces.push(chunk.subarray(start));
  }
  if (pieceBytes > 0) yield { number: number + 1, bytes: Buffer.concat(pieces) };
}

/** The text of a line without its BOM (first line), `\r` and surrounding blanks. */
function textOf(line: Line): string {
  const text = line.bytes.toString('utf8');
  return (line.number === 1 && text.startsWith(byteOrderMark) ? text.slice(1) : text).trim();
}

function notJson(line: Line, error: unknown, name: string): InputError {
  return new InputError(`${name}, line ${line.number}: not JSON (${(error as Error).message})`);
}

/**
 * The input as one JSON value spread over several lines (a pretty-printed file), from its first non-blank
 * line on; it is held whole, so its size is bounded. If it is not one JSON value, the first line is reported
 * as NDJSON would report it.
 */
async function wholeDocument(first: Line, firstError: unknown, lines: AsyncIterator<Line>, name: string, limits: InputLimits): Promise<unknown> {
  const pieces: Buffer[] = [first.bytes];
  let bytes = first.bytes.length;
  for (let next = await lines.next(); next.done !== true; next = await lines.next()) {
    bytes += next.value.bytes.length + 1;
    if (bytes > limits.documentBytesMax) {
      throw new InputError(`${name}: one JSON document over ${sizeOf(limits.documentBytesMax)}; write one event per line (NDJSON), which has no size limit`);
    }
    pieces.push(Buffer.from('\n'), next.value.bytes);
  }
  let text = Buffer.concat(pieces).toString('utf8');
  if (text.startsWith(byteOrderMark)) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch {
    throw notJson(first, firstError, name);
  }
}

/**
 * The events of an events file (one, an array, NDJSON, or an object with an `events` array), streamed: NDJSON
 * a line at a time, so its size is not bounded by one string. A first non-blank line that is JSON on its own
 * makes the input NDJSON (a JSON value cannot go on past a complete one); otherwise the input must be one JSON
 * value, read whole and bounded. A lone document is spread (see `spread`), and every document unwrapped (see
 * `eventsOf`). Errors are `InputError`s.
 */
export async function* readEvents(path: string, stdin: NodeJS.ReadableStream, limits: InputLimits = inputLimits): AsyncGenerator<unknown> {
  const name = nameOf(path);
  const lines = linesOf(chunksOf(path, stdin), name, limits);
  let first: unknown;
  let count = 0;
  try {
    for (let next = await lines.next(); next.done !== true; next = await lines.next()) {
      const text = textOf(next.value);
      if (text === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        if (count > 0) throw notJson(next.value, error, name);
        yield* spread(await wholeDocument(next.value, error, lines, name, limits));
        return;
      }
      count += 1;
      if (count === 1) {
        first = value;
        continue;
      }
      if (count === 2) yield* eventsOf([first]);
      yield* eventsOf([value]);
    }
  } finally {
    await lines.return(undefined);
  }
  if (count === 0) throw new InputError(`${name} is empty`);
  if (count === 1) yield* spread(first);
}

/** One document alone: an array gives its items, and a single `{"events": [...]}` its events. */
function* spread(value: unknown): Generator<unknown> {
  yield* eventsOf(Array.isArray(value) ? value : [value]);
}

/** One JSON value (an expected state), read whole up to the limit. */
export async function readJson(path: string, stdin: NodeJS.ReadableStream, limits: InputLimits = inputLimits): Promise<unknown> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of chunksOf(path, stdin)) {
    bytes += chunk.length;
    if (bytes > limits.documentBytesMax) throw new InputError(`${nameOf(path)}: over ${sizeOf(limits.documentBytesMax)}, the most read for one JSON document`);
    chunks.push(chunk);
  }
  let text = Buffer.concat(chunks).toString('utf8');
  if (text.startsWith(byteOrderMark)) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InputError(`${nameOf(path)}: not JSON (${(error as Error).message})`);
  }
}

/** An event as the log lists it (`GET /v1/tenants/{t}/events`): its position and the event, nothing else. */
function isLoggedEvent(value: unknown): value is { position: number; event: object } {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.keys(value).length !== 2) return false;
  const { position, event } = value as { position?: unknown; event?: unknown };
  return Number.isInteger(position) && event !== null && typeof event === 'object' && !Array.isArray(event);
}

function eventOf(document: unknown): unknown {
  return isLoggedEvent(document) ? document.event : document;
}

/**
 * An events file is events (one, an array, NDJSON) or an object with an `events` array: a worked example, or a
 * page of the events API, whose logged events give their `event`s (a page per NDJSON line reads as well).
 */
export function eventsOf(documents: unknown[]): unknown[] {
  const [first] = documents;
  if (documents.length === 1 && first !== null && typeof first === 'object' && Array.isArray((first as { events?: unknown }).events)) {
    return (first as { events: unknown[] }).events.map(eventOf);
  }
  return documents.map(eventOf);
}
