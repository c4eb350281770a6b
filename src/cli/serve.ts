// `stockline serve`: the HTTP API on the configured engine, until SIGTERM or SIGINT.

import { ConfigError, loadConfig } from '../app/config.js';
import { start } from '../main.js';
import { parseArgs, UsageError } from './io.js';
import type { CliIo } from './io.js';

export const serveUsage = 'usage: stockline serve [--port N] [--host H] [--data-dir DIR] [--config FILE] [--demo]\n';

export async function serveCommand(args: string[], io: CliIo): Promise<number> {
  let options: Record<string, string | boolean>;
  try {
    ({ options } = parseArgs(args, { string: ['port', 'host', 'data-dir', 'config', 'log-level'], boolean: ['demo'] }));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`stockline serve: ${error.message}\n${serveUsage}`);
    return 2;
  }
  let config;
  try {
    config = loadConfig(stringOption(options.config) ?? process.env.STOCKLINE_CONFIG);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr(`stockline serve: ${error.message}\n`);
    return 2;
  }
  const port = stringOption(options.port) ?? process.env.PORT;
  if (port !== undefined) {
    const parsed = Number(port);
    if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65_535) {
      io.stderr(`stockline serve: --port must be an integer 0..65535, got ${port}\n`);
      return 2;
    }
    config.server.port = parsed;
  }
  config.server.host = stringOption(options.host) ?? process.env.HOST ?? config.server.host;
  config.dataDir = stringOption(options['data-dir']) ?? process.env.STOCKLINE_DATA_DIR ?? config.dataDir;
  const level = stringOption(options['log-level']) ?? process.env.STOCKLINE_LOG_LEVEL;
  if (level !== undefined) config.logLevel = level as typeof config.logLevel;
  let running;
  try {
    running = await start({ config, adminKey: process.env.STOCKLINE_ADMIN_KEY, demo: options.demo === true, io });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr(`stockline serve: ${error.message}\n`);
    return 2;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      io.stderr(`stockline: ${signal} received, finishing in-flight work\n`);
      running.close().then(resolve, (error: unknown) => {
        io.stderr(`stockline: shutdown failed: ${(error as Error).message}\n`);
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

function stringOption(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
