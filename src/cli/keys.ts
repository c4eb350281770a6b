// `stockline keys create|list|revoke`: API keys in the file the configured engine reads them from; a new key is printed once.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Database } from 'better-sqlite3';
import type { Scope } from '../adapters/http/auth.js';
import { scopes as knownScopes } from '../adapters/http/auth.js';
import { ApiKeyStore, KeyRequestError } from '../adapters/sqlite/api-keys.js';
import type { ApiKeyInfo } from '../adapters/sqlite/api-keys.js';
import { migrate } from '../adapters/sqlite/schema.js';
import { tenantIdPattern } from '../core/index.js';
import { ConfigError } from '../app/config.js';
import type { StocklineConfig } from '../app/config.js';
import { contextOf, databaseFile } from './context.js';
import { parseArgs, refuseExtraArguments, UsageError } from './io.js';
import type { CliIo } from './io.js';

export const keysUsage = `usage: stockline keys create (--tenant T | --admin) --scopes read,write [--data-dir DIR] [--config FILE]
       stockline keys list [--data-dir DIR] [--config FILE]
       stockline keys revoke ID [--data-dir DIR] [--config FILE]
scopes: read (reads), write (also changes stock and reservations), admin (also imports events)
the data folder: --data-dir, else $STOCKLINE_DATA_DIR, else dataDir of the configuration (--config, else $STOCKLINE_CONFIG), else ./data
`;

type Io = Pick<CliIo, 'stdout' | 'stderr'>;
type Action = 'create' | 'list' | 'revoke';

/** The file the server keeps its API keys in: the embedded engine's own, or a Kafka node's local one (see startEngine in main.ts). */
export function keysFileOf(engine: StocklineConfig['engine']): string {
  return engine === 'kafka' ? 'stockline-node.db' : 'stockline.db';
}

function parseScopes(text: string): Scope[] {
  const listed = text.split(',').map((scope) => scope.trim()).filter((scope) => scope !== '');
  const unknown = listed.filter((scope) => !(knownScopes as readonly string[]).includes(scope));
  if (listed.length === 0 || unknown.length > 0) throw new UsageError(`--scopes must list ${knownScopes.join(', ')}; got ${JSON.stringify(text)}`);
  return listed as Scope[];
}

/** Checks the arguments of an action before any file is opened, so a mistake never depends on the folder. */
function checkArguments(action: Action, options: Record<string, string | boolean>, positional: string[]): void {
  if (action === 'revoke' && positional[0] === undefined) throw new UsageError('revoke needs the id of a key (see keys list)');
  refuseExtraArguments(positional, action === 'revoke' ? 1 : 0);
  if (action !== 'create') return;
  if ((typeof options.tenant === 'string') === (options.admin === true)) throw new UsageError('give exactly one of --tenant T and --admin');
  if (typeof options.tenant === 'string' && !new RegExp(tenantIdPattern).test(options.tenant)) {
    throw new UsageError(`invalid tenant id ${JSON.stringify(options.tenant)}: lower-case letters, digits, _ and -`);
  }
  if (typeof options.scopes !== 'string') throw new UsageError('--scopes is required, e.g. --scopes read,write');
  parseScopes(options.scopes);
}

/** `made`: the file was made by this command (no server has used the folder yet), which the message says. */
function create(store: ApiKeyStore, options: Record<string, string | boolean>, path: string, made: boolean, io: Io): number {
  const tenant = typeof options.tenant === 'string' ? options.tenant : null;
  const created = store.create({ tenant, scopes: parseScopes(options.scopes as string) });
  io.stdout(`${created.key}\n`);
  const where = made ? `${resolve(path)}, made now (no server has used this folder yet: start it with the same folder)` : resolve(path);
  io.stderr(`created key ${created.id} for ${tenant === null ? 'every tenant (admin)' : `tenant ${tenant}`} in ${where}; it is shown this once, store it now\n`);
  return 0;
}

function formatRow(info: ApiKeyInfo): string {
  const revoked = info.revokedMs === null ? '-' : new Date(info.revokedMs).toISOString();
  return `${info.id}\t${info.tenant ?? '*'}\t${info.scopes.join(',')}\t${new Date(info.createdMs).toISOString()}\t${revoked}\n`;
}

function list(store: ApiKeyStore, io: Io): number {
  io.stdout('id\ttenant\tscopes\tcreated\trevoked\n');
  for (const info of store.list()) io.stdout(formatRow(info));
  return 0;
}

function revoke(store: ApiKeyStore, id: string, io: Io): number {
  if (!store.revoke(id)) {
    io.stderr(`stockline keys: no key ${id}\n`);
    return 1;
  }
  io.stderr(`revoked key ${id}\n`);
  return 0;
}

/**
 * Why the keys cannot go to `file` in `dataDir`, or undefined when they can. Opening a missing file would
 * make a database no server reads, so only the first key of a fresh embedded folder may create it (a key
 * can be made before the first `serve`, which then opens that file).
 */
function refusal(action: Action, engine: StocklineConfig['engine'], dataDir: string, file: string): string | undefined {
  if (existsSync(databaseFile(dataDir, file))) return undefined;
  const where = 'give the data folder the server uses (--data-dir, or its configuration with --config or STOCKLINE_CONFIG)';
  if (engine === 'kafka') return `no ${file} in ${dataDir}: a Kafka node keeps its keys there once it has served; start stockline serve with this configuration first, or ${where}`;
  const nodeFile = keysFileOf('kafka');
  if (existsSync(databaseFile(dataDir, nodeFile))) return `${dataDir} holds a Kafka node's ${nodeFile} but no ${file}: give the node's configuration (--config or STOCKLINE_CONFIG) so the key goes where its server reads keys`;
  if (action !== 'create') return `no ${file} in ${dataDir}: ${where}`;
  return undefined;
}

/** `openDb` opens (creating if need be) the database `file` in `dataDir`; the folder comes from the same options as for serve. */
export async function keysCommand(args: string[], io: Io, openDb: (dataDir: string, file: string) => Database): Promise<number> {
  const [action, ...rest] = args;
  let parsed: ReturnType<typeof parseArgs>;
  let context: ReturnType<typeof contextOf>;
  try {
    if (action !== 'create' && action !== 'list' && action !== 'revoke') throw new UsageError(`unknown action ${action ?? '(none)'}`);
    parsed = parseArgs(rest, { string: ['tenant', 'scopes', 'data-dir', 'config'], boolean: ['admin'] });
    checkArguments(action, parsed.options, parsed.positional);
    context = contextOf(parsed.options);
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr(`stockline keys: ${error.message}\n`);
      return 2;
    }
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`stockline keys: ${error.message}\n${keysUsage}`);
    return 2;
  }
  const { options, positional } = parsed;
  const file = keysFileOf(context.config.engine);
  const refused = refusal(action, context.config.engine, context.dataDir, file);
  if (refused !== undefined) {
    io.stderr(`stockline keys: ${refused}\n`);
    return 2;
  }
  const made = !existsSync(databaseFile(context.dataDir, file));
  let db: Database;
  try {
    db = openDb(context.dataDir, file);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr(`stockline keys: ${error.message}\n`);
    return 2;
  }
  try {
    migrate(db);
    const store = new ApiKeyStore(db);
    if (action === 'create') return create(store, options, databaseFile(context.dataDir, file), made, io);
    if (action === 'list') return list(store, io);
    return revoke(store, positional[0] as string, io);
  } catch (error) {
    if (!(error instanceof KeyRequestError)) throw error;
    io.stderr(`stockline keys: ${error.message}\n${keysUsage}`);
    return 2;
  } finally {
    db.close();
  }
}
