// `stockline serve`: the HTTP API on the configured engine, until SIGTERM or SIGINT.

import { pino } from 'pino';
import { ConfigError, loadConfig } from '../app/config.js';
import type { StocklineConfig } from '../app/config.js';
import { AppError } from '../app/engine.js';
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
  const flagLevel = stringOption(options['log-level']);
  const level = flagLevel ?? process.env.STOCKLINE_LOG_LEVEL;
  if (level !== undefined) {
    if (!logLevels.includes(level)) {
      io.stderr(`stockline serve: ${flagLevel === undefined ? 'STOCKLINE_LOG_LEVEL' : '--log-level'} must be one of ${logLevels.join(', ')}, got ${JSON.stringify(level)}\n`);
      return 2;
    }
    config.logLevel = level as StocklineConfig['logLevel'];
  }
  let running;
  try {
    running = await start({ config, adminKey: process.env.STOCKLINE_ADMIN_KEY, demo: options.demo === true, io });
  } catch (error) {
    const reason = operatorError(error, config.server);
    if (reason === undefined) throw error;
    io.stderr(`stockline serve: ${reason}\n`);
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

/** pino's level names, and `silent`. */
const logLevels = [...Object.keys(pino.levels.values), 'silent'];

/**
 * What an operator can fix (the configuration, a folder or port another process holds, a host that does not
 * resolve), as a sentence; undefined for anything else, which is a bug and keeps its stack trace.
 */
function operatorError(error: unknown, server: { host: string; port: number }): string | undefined {
  if (error instanceof ConfigError) return error.message;
  if (error instanceof AppError) return error.retryable ? undefined : error.message;
  const { code, syscall, message } = error as NodeJS.ErrnoException;
  if (code === 'EADDRINUSE') return `port ${server.port} on ${server.host} is in use by another process: stop it, or pick another port (--port, PORT)`;
  if (syscall === 'listen' || syscall === 'getaddrinfo') return `cannot listen on ${server.host}:${server.port}: ${message}`;
  return undefined;
}

function stringOption(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
