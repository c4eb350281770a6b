// `stockline ingest debezium <file|->`: applies Debezium change events through a configured column mapping.
// Exit 0: every event applied or absorbed. 1: dead letters, or a failure part way. 2: bad usage or unreadable input.

import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CommandBus, DeadLetterSink } from '../app/ports.js';
import { ConfigError, loadConfig } from '../app/config.js';
import type { StocklineConfig } from '../app/config.js';
import { ingestDebeziumFile } from '../adapters/debezium/file-source.js';
import type { IngestSummary } from '../adapters/debezium/file-source.js';
import { validateSourceConfig } from '../adapters/postgres-cdc/config.js';
import type { DebeziumSourceConfig } from '../adapters/postgres-cdc/config.js';
import { CdcError } from '../adapters/postgres-cdc/errors.js';
import type { CliIo } from './io.js';
import { parseArgs, stringOption, UsageError } from './io.js';
import { databaseFile, dataDirOf } from './context.js';

export const ingestUsage = `usage: stockline ingest debezium [<file|->] [--config FILE] [--source NAME] [--data-dir DIR] [--new-ledger]

  Applies Debezium PostgreSQL change events (NDJSON, or one JSON array; - reads stdin) through the
  column mapping of a "type: debezium" item of the sources: list in FILE (default: $STOCKLINE_CONFIG).
  --source picks that item by name when there are several. Without <file>, the item's file: is read (a
  relative one from the current folder). Every change carries source.lsn as its
  sequence, so duplicates and older redeliveries are absorbed and running a file twice is safe.
  The ledger is the embedded engine's in the data folder: --data-dir, else $STOCKLINE_DATA_DIR, else
  dataDir of FILE; stop the server on that folder first. A folder without a ledger is refused (a
  mistyped folder would take the changes where no server reads them); --new-ledger makes one there,
  for a first load before the server's first start.
  Exit 0: done; 1: some events went to dead letters (or the run failed part way); 2: bad usage.
`;

class IngestUsageError extends Error {}

function pickSource(configFile: string | undefined, name: string | undefined): { config: StocklineConfig; source: DebeziumSourceConfig } {
  if (configFile === undefined || configFile === '') throw new IngestUsageError('--config FILE is required (or set STOCKLINE_CONFIG)');
  const config = loadConfig(configFile);
  const candidates = config.sources
    .map((item, index) => ({ item, index }))
    .filter(({ item }) => item.type === 'debezium' && (name === undefined || item.name === name));
  if (candidates.length === 0) throw new IngestUsageError(`${configFile} has no debezium source${name === undefined ? '' : ` named ${name}`} in sources:`);
  if (candidates.length > 1) throw new IngestUsageError(`${configFile} has several debezium sources: pick one with --source NAME`);
  const { item, index } = candidates[0] as { item: unknown; index: number };
  return { config, source: validateSourceConfig(item, `sources[${index}]`) as DebeziumSourceConfig };
}

export function formatSummary(summary: IngestSummary, input: string): string {
  const rejected = summary.rejected > 0 ? `, ${summary.rejected} rejected` : '';
  return `ingested ${summary.events} events from ${input}: ${summary.applied} applied, ${summary.stale} stale (duplicates), ${summary.deadLetters} dead letters, ${summary.skipped} skipped${rejected}\n`;
}

function isUnreadable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR';
}

/** What a run of ingest needs, from arguments that were all checked. */
export interface IngestRequest {
  path: string;
  source: DebeziumSourceConfig;
  /** The folder of the ledger the changes go to (see the usage text). */
  dataDir: string;
  /** Make the ledger when the folder has none. */
  newLedger: boolean;
}

function cannotRead(input: string, error: unknown): string {
  return `cannot read ${input}: ${(error as Error).message}`;
}

/** Why `path` cannot be read, or undefined when it can: a typo is found before the ledger is opened. */
function unreadable(path: string): string | undefined {
  if (path === '-') return undefined;
  try {
    if (statSync(path).isDirectory()) return `cannot read ${path}: it is a folder`;
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (error) {
    if (!isUnreadable(error)) throw error;
    return cannotRead(path, error);
  }
}

/**
 * The checked request, or the exit status when the command ends here (bad usage, a bad configuration, an input
 * that cannot be read). Opens nothing: the ledger is opened only after this has passed.
 */
export function ingestRequestOf(args: string[], io: Pick<CliIo, 'stdout' | 'stderr'>): IngestRequest | number {
  let request: IngestRequest;
  try {
    const { options, positional } = parseArgs(args, { string: ['config', 'source', 'data-dir'], boolean: ['new-ledger'] });
    if (positional.length < 1 || positional.length > 2 || positional[0] !== 'debezium') throw new IngestUsageError('expected: ingest debezium <file|->');
    const picked = pickSource(stringOption(options.config) ?? process.env.STOCKLINE_CONFIG, stringOption(options.source));
    const path = positional[1] ?? picked.source.file;
    if (path === undefined) throw new IngestUsageError(`name the file of events: ingest debezium <file|->, or file: in the configuration of source ${picked.source.name}`);
    const dataDir = dataDirOf(options['data-dir'], picked.config.dataDir);
    request = { path, source: picked.source, dataDir, newLedger: options['new-ledger'] === true };
  } catch (error) {
    if (error instanceof UsageError || error instanceof IngestUsageError) {
      io.stderr(`stockline ingest: ${error.message}\n${ingestUsage}`);
      return 2;
    }
    if (error instanceof ConfigError || error instanceof CdcError) {
      io.stderr(`stockline ingest: invalid configuration: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const reason = unreadable(request.path);
  if (reason === undefined) return request;
  io.stderr(`stockline ingest: ${reason}\n`);
  return 2;
}

/** Why the request's data folder cannot take the changes (it has no ledger, and none is to be made), or undefined. */
export function noLedger(request: IngestRequest): string | undefined {
  if (request.newLedger || existsSync(databaseFile(request.dataDir))) return undefined;
  return `no stockline.db in ${resolve(request.dataDir)}: give the data folder of the server (--data-dir, or dataDir of the configuration; `
    + 'a relative one is taken from the current folder), or pass --new-ledger to make a ledger there';
}

/** Applies the changes of a checked request to `bus`. */
export async function runIngest(request: IngestRequest, io: CliIo, bus: CommandBus, deadLetters: DeadLetterSink): Promise<number> {
  const { path, source } = request;
  const input = path === '-' ? 'stdin' : path;
  try {
    const summary = await ingestDebeziumFile({ path, stdin: io.stdin, config: source, bus, deadLetters });
    io.stdout(formatSummary(summary, input));
    return summary.deadLetters > 0 ? 1 : 0;
  } catch (error) {
    if (isUnreadable(error)) {
      io.stderr(`stockline ingest: ${cannotRead(input, error)}\n`);
      return 2;
    }
    io.stderr(`stockline ingest: failed part way through ${input}: ${(error as Error).message}; what was submitted before is applied, and running it again is safe\n`);
    return 1;
  }
}

/** Checks the arguments, then applies the changes to `bus` (ingestMain opens the ledger between the two). */
export async function ingestCommand(args: string[], io: CliIo, bus: CommandBus, deadLetters: DeadLetterSink): Promise<number> {
  const request = ingestRequestOf(args, io);
  return typeof request === 'number' ? request : runIngest(request, io, bus, deadLetters);
}
