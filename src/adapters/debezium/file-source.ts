// Reads Debezium change events from a file or stdin (NDJSON, or one JSON array) and submits them in batches.

import { createReadStream } from 'node:fs';
import type { CommandBus, DeadLetterSink } from '../../app/ports.js';
import { addCounts, applyChanges, emptyCounts } from '../postgres-cdc/apply.js';
import type { ApplyCounts } from '../postgres-cdc/apply.js';
import type { DebeziumSourceConfig } from '../postgres-cdc/config.js';
import { CdcError } from '../postgres-cdc/errors.js';
import { cdcLimits } from '../postgres-cdc/limits.js';
import type { RowChange } from '../postgres-cdc/row-mapping.js';
import { continuesTransaction, debeziumSourceId, parseDebeziumEvent, reduceEffects } from './envelope.js';
import type { RowEffect } from './envelope.js';

export interface IngestSummary {
  events: number;
  /** Row changes the ledger took. */
  applied: number;
  /** Row changes refused as not newer than what the ledger has: duplicates and out-of-order redelivery. */
  stale: number;
  /** Row changes refused for another reason. */
  rejected: number;
  deadLetters: number;
  /** Tombstones, other tables' events, logical decoding messages. */
  skipped: number;
}

export interface IngestOptions {
  /** A file path, or `-` for `stdin`. */
  path: string;
  stdin: NodeJS.ReadableStream;
  config: DebeziumSourceConfig;
  bus: CommandBus;
  deadLetters: DeadLetterSink;
  nowMs?: () => number;
}

/** One item of the input: a parsed event, or why it could not be read. */
type Item = { line: number; value: unknown } | { line: number; error: string; text: string };

async function* chunksOf(stream: NodeJS.ReadableStream): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of stream) yield typeof chunk === 'string' ? chunk : decoder.decode(chunk as Uint8Array, { stream: true });
  const rest = decoder.decode();
  if (rest !== '') yield rest;
}

function parseLine(line: number, text: string): Item {
  try {
    return { line, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { line, error: `line ${line}: not JSON (${(error as Error).message})`, text: text.slice(0, cdcLimits.deadLetterValueCharsMax) };
  }
}

function tooLong(line: number, text: string): Item {
  return { line, error: `line ${line}: longer than ${cdcLimits.debeziumEventBytesMax} bytes`, text: text.slice(0, 256) };
}

/** NDJSON is streamed line by line (a line over the limit is reported and skipped); a document starting with `[` is read whole, bounded. */
async function* itemsOf(stream: NodeJS.ReadableStream): AsyncGenerator<Item> {
  let buffer = '';
  let line = 0;
  let mode: 'unknown' | 'lines' | 'array' = 'unknown';
  let skipping = false;
  for await (const chunk of chunksOf(stream)) {
    buffer += chunk;
    if (mode === 'unknown' && buffer.trim() !== '') mode = buffer.trimStart().startsWith('[') ? 'array' : 'lines';
    if (mode === 'array') {
      if (buffer.length > cdcLimits.debeziumArrayFileBytesMax) throw new CdcError('INVALID_INPUT', `a JSON array input is limited to ${cdcLimits.debeziumArrayFileBytesMax} bytes; use NDJSON`, false);
      continue;
    }
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      line += 1;
      const text = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (skipping) skipping = false;
      else if (text !== '') yield text.length > cdcLimits.debeziumEventBytesMax ? tooLong(line, text) : parseLine(line, text);
      newline = buffer.indexOf('\n');
    }
    if (!skipping && buffer.length > cdcLimits.debeziumEventBytesMax) {
      yield tooLong(line + 1, buffer);
      skipping = true;
    }
    if (skipping) buffer = '';
  }
  if (mode === 'array') {
    const parsed = parseLine(1, buffer);
    if ('error' in parsed) throw new CdcError('INVALID_INPUT', `the input starts with [ but is not a JSON array: ${parsed.error}`, false);
    if (!Array.isArray(parsed.value)) throw new CdcError('INVALID_INPUT', 'the input starts with [ but is not a JSON array', false);
    let index = 0;
    for (const value of parsed.value as unknown[]) yield { line: ++index, value };
    return;
  }
  if (!skipping && buffer.trim() !== '') yield parseLine(line + 1, buffer.trim());
}

/**
 * Events of one transaction (consecutive events with the same source.txId and rising LSNs) are reduced together, so a
 * place that changed hands inside it keeps its last row; a transaction still open when the batch is
 * full goes on into the next batch, up to debeziumTransactionEventsMax events.
 */
class Batch {
  changes: RowChange[] = [];
  letters: Array<{ reason: string; payload: unknown }> = [];
  events = 0;
  skipped = 0;

  constructor(private readonly source: string, private open: RowEffect[] = []) {}

  add(item: Item, config: DebeziumSourceConfig): void {
    this.events += 1;
    if ('error' in item) {
      this.letters.push({ reason: item.error, payload: { line: item.line, text: item.text } });
      return;
    }
    const result = parseDebeziumEvent(item.value, config);
    if (result.kind === 'changes') this.addEffect(result.effect);
    else if (result.kind === 'skip') this.skipped += 1;
    if (result.kind === 'dead') this.letters.push({ reason: `event ${item.line}: ${result.reason}`, payload: result.payload });
    if (result.kind === 'changes' && result.dead !== undefined) this.letters.push({ reason: `event ${item.line}: ${result.dead.reason}`, payload: result.dead.payload });
  }

  /** The transaction still open, taken out of this batch for the next one. */
  takeOpen(): RowEffect[] {
    const open = this.open;
    this.open = [];
    return open;
  }

  closeTransaction(): void {
    if (this.open.length > 0) this.changes.push(...reduceEffects(this.open, this.source));
    this.open = [];
  }

  private addEffect(effect: RowEffect): void {
    if (!continuesTransaction(this.open, effect)) this.closeTransaction();
    this.open.push(effect);
  }
}

/** Submits every event of the input, in order; resolves with what happened once all of it is durable. */
export async function ingestDebeziumFile(options: IngestOptions): Promise<IngestSummary> {
  const stream = options.path === '-' ? options.stdin : createReadStream(options.path);
  const nowMs = options.nowMs ?? Date.now;
  const source = debeziumSourceId(options.config);
  const summary: IngestSummary = { events: 0, applied: 0, stale: 0, rejected: 0, deadLetters: 0, skipped: 0 };
  const counts: ApplyCounts = emptyCounts();
  const flush = async (batch: Batch): Promise<void> => {
    addCounts(counts, await applyChanges(options.bus, batch.changes));
    const timeMs = nowMs();
    for (const letter of batch.letters) options.deadLetters.deadLetter({ source, reason: letter.reason, payload: letter.payload, timeMs });
    summary.events += batch.events;
    summary.skipped += batch.skipped;
    summary.deadLetters += batch.letters.length;
  };
  let batch = new Batch(source);
  for await (const item of itemsOf(stream)) {
    batch.add(item, options.config);
    if (batch.events >= cdcLimits.debeziumBatchEvents) {
      const open = batch.takeOpen();
      await flush(batch);
      batch = new Batch(source, open);
    }
  }
  batch.closeTransaction();
  await flush(batch);
  return { ...summary, applied: counts.applied, stale: counts.stale, rejected: counts.rejected };
}
