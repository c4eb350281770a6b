// What several commands share: where the data folder is, and opening its database or engine.

import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { ConfigError, loadConfig } from '../app/config.js';
import { openDataFile, prepareDataFolder } from '../app/data-folder.js';
import type { StocklineConfig } from '../app/config.js';
import { migrate } from '../adapters/sqlite/schema.js';
import { EmbeddedEngine } from '../adapters/sqlite/embedded-engine.js';
import { stringOption } from './io.js';

/**
 * The configuration and data folder of a command's parsed options: the data folder is --data-dir, then
 * STOCKLINE_DATA_DIR, then the config file's (--config, then STOCKLINE_CONFIG), then ./data. Reads the config only.
 */
export function contextOf(options: Record<string, string | boolean>): { config: StocklineConfig; dataDir: string } {
  const config = loadConfig(configFileOf(options.config));
  return { config, dataDir: dataDirOf(options['data-dir'], config.dataDir) };
}

/** The configuration file: --config, then STOCKLINE_CONFIG; an empty one is refused rather than read as none. */
export function configFileOf(option: string | boolean | undefined): string | undefined {
  const file = stringOption(option) ?? process.env.STOCKLINE_CONFIG;
  if (file === '') throw new ConfigError('the configuration file is empty (--config or STOCKLINE_CONFIG given as ""): name a file, or unset STOCKLINE_CONFIG');
  return file;
}

/**
 * The data folder: --data-dir, then STOCKLINE_DATA_DIR, then the configuration's. An empty one is refused rather
 * than read as the default: it comes from a variable left empty, and the command would act on another ledger.
 */
export function dataDirOf(option: string | boolean | undefined, configured: string): string {
  const dataDir = stringOption(option) ?? process.env.STOCKLINE_DATA_DIR ?? configured;
  if (dataDir === '') throw new ConfigError('the data folder is empty (--data-dir or STOCKLINE_DATA_DIR given as ""): name a folder, or unset STOCKLINE_DATA_DIR');
  return dataDir;
}

export function databaseFile(dataDir: string, file = 'stockline.db'): string {
  return join(dataDir, file);
}

/**
 * The data folder's database, for commands that touch only side tables (keys, outbox) while a server may run. A
 * folder or file that cannot be used is a ConfigError that says why, as for serve.
 */
export function openDatabase(dataDir: string, file = 'stockline.db'): Db {
  prepareDataFolder(dataDir);
  const path = databaseFile(dataDir, file);
  return openDataFile(path, () => {
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('busy_timeout = 5000');
      migrate(db);
    } catch (error) {
      db.close();
      throw error;
    }
    return db;
  });
}

/** The embedded engine on the data folder, for commands that write to the ledger while no server runs. */
export function openEngine(dataDir: string): EmbeddedEngine {
  prepareDataFolder(dataDir);
  const path = databaseFile(dataDir);
  return openDataFile(path, () => new EmbeddedEngine({ path, expiryIntervalMs: 0 }));
}
