// What several commands share: where the data folder is, and opening its database or engine.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { loadConfig } from '../app/config.js';
import type { StocklineConfig } from '../app/config.js';
import { migrate } from '../adapters/sqlite/schema.js';
import { EmbeddedEngine } from '../adapters/sqlite/embedded-engine.js';

/** Removes `--name value` (or `--name=value`) from the arguments and returns its value. */
export function takeOption(args: string[], name: string): { value: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let value: string | undefined;
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index] as string;
    if (arg === `--${name}`) {
      value = args[index + 1];
      index += 1;
    } else if (arg.startsWith(`--${name}=`)) {
      value = arg.slice(name.length + 3);
    } else {
      rest.push(arg);
    }
  }
  return { value, rest };
}

/** The configuration and data folder: --data-dir, then STOCKLINE_DATA_DIR, then the config file, then ./data. */
export function contextOf(args: string[], keepConfigOption = false): { config: StocklineConfig; dataDir: string; rest: string[] } {
  const dataDirOption = takeOption(args, 'data-dir');
  const configOption = takeOption(dataDirOption.rest, 'config');
  const config = loadConfig(configOption.value ?? process.env.STOCKLINE_CONFIG);
  const dataDir = dataDirOption.value ?? process.env.STOCKLINE_DATA_DIR ?? config.dataDir;
  return { config, dataDir, rest: keepConfigOption ? dataDirOption.rest : configOption.rest };
}

export function databaseFile(dataDir: string, file = 'stockline.db'): string {
  return join(dataDir, file);
}

/** The data folder's database, for commands that touch only side tables (keys, outbox) while a server may run. */
export function openDatabase(dataDir: string, file = 'stockline.db'): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(databaseFile(dataDir, file));
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

/** The embedded engine on the data folder, for commands that write to the ledger while no server runs. */
export function openEngine(dataDir: string): EmbeddedEngine {
  mkdirSync(dataDir, { recursive: true });
  return new EmbeddedEngine({ path: databaseFile(dataDir), expiryIntervalMs: 0 });
}
