// `stockline keys create|list|revoke`: API keys in the embedded engine's database; a new key is printed once.

import type { Database } from 'better-sqlite3';
import type { Scope } from '../adapters/http/auth.js';
import { scopes as knownScopes } from '../adapters/http/auth.js';
import { ApiKeyStore, KeyRequestError } from '../adapters/sqlite/api-keys.js';
import type { ApiKeyInfo } from '../adapters/sqlite/api-keys.js';
import { migrate } from '../adapters/sqlite/schema.js';
import { parseArgs, UsageError } from './io.js';
import type { CliIo } from './io.js';

export const keysUsage = `usage: stockline keys create (--tenant T | --admin) --scopes read,write [--data-dir DIR]
       stockline keys list [--data-dir DIR]
       stockline keys revoke ID [--data-dir DIR]
scopes: read (reads), write (also changes stock and reservations), admin (also imports events)
`;

type Io = Pick<CliIo, 'stdout' | 'stderr'>;

function parseScopes(text: string): Scope[] {
  const listed = text.split(',').map((scope) => scope.trim()).filter((scope) => scope !== '');
  const unknown = listed.filter((scope) => !(knownScopes as readonly string[]).includes(scope));
  if (listed.length === 0 || unknown.length > 0) throw new UsageError(`--scopes must list ${knownScopes.join(', ')}; got ${JSON.stringify(text)}`);
  return listed as Scope[];
}

function create(store: ApiKeyStore, options: Record<string, string | boolean>, io: Io): number {
  const tenant = typeof options.tenant === 'string' ? options.tenant : null;
  if ((tenant === null) === (options.admin !== true)) throw new UsageError('give exactly one of --tenant T and --admin');
  if (typeof options.scopes !== 'string') throw new UsageError('--scopes is required, e.g. --scopes read,write');
  const created = store.create({ tenant, scopes: parseScopes(options.scopes) });
  io.stdout(`${created.key}\n`);
  io.stderr(`created key ${created.id} for ${tenant === null ? 'every tenant (admin)' : `tenant ${tenant}`}; it is shown this once, store it now\n`);
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

function revoke(store: ApiKeyStore, id: string | undefined, io: Io): number {
  if (id === undefined) throw new UsageError('revoke needs the id of a key (see keys list)');
  if (!store.revoke(id)) {
    io.stderr(`stockline keys: no key ${id}\n`);
    return 1;
  }
  io.stderr(`revoked key ${id}\n`);
  return 0;
}

/** `openDb` opens the embedded engine's database, in `--data-dir` when one is given. */
export async function keysCommand(args: string[], io: Io, openDb: (dataDir?: string) => Database): Promise<number> {
  const [action, ...rest] = args;
  let parsed: ReturnType<typeof parseArgs>;
  try {
    if (action !== 'create' && action !== 'list' && action !== 'revoke') throw new UsageError(`unknown action ${action ?? '(none)'}`);
    parsed = parseArgs(rest, { string: ['tenant', 'scopes', 'data-dir'], boolean: ['admin'] });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`stockline keys: ${error.message}\n${keysUsage}`);
    return 2;
  }
  const { options, positional } = parsed;
  const db = openDb(typeof options['data-dir'] === 'string' ? options['data-dir'] : undefined);
  try {
    migrate(db);
    const store = new ApiKeyStore(db);
    if (action === 'create') return create(store, options, io);
    if (action === 'list') return list(store, io);
    return revoke(store, positional[0], io);
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof KeyRequestError)) throw error;
    io.stderr(`stockline keys: ${error.message}\n${keysUsage}`);
    return 2;
  } finally {
    db.close();
  }
}
