// `stockline serve`: the HTTP API on the configured engine, until SIGTERM or SIGINT.

import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../app/config.js';
import type { StocklineConfig } from '../app/config.js';
import { AppError } from '../app/engine.js';
import { start } from '../main.js';
import { configFileOf } from './context.js';
import { decimalInteger, parseArgs, refuseExtraArguments, stringOption, UsageError } from './io.js';
import type { CliIo } from './io.js';

/** pino's level names, and `silent`. */
const logLevels = [...Object.keys(pino.levels.values), 'silent'];

/**
 * A signal this soon after the one that began the shutdown is its echo and is ignored: under `npm start` a
 * Ctrl-C reaches the server twice, from the terminal and forwarded by npm. A later one stops at once.
 */
const signalEchoMs = 1_000;

export const serveUsage = `usage: stockline serve [--port N] [--host H] [--data-dir DIR] [--config FILE] [--log-level L] [--demo]
  --port N        port of the API and dashboard (else $PORT, else server.port of FILE, else 8080)
  --host H        address to listen on (else $HOST, else server.host of FILE, else 0.0.0.0)
  --data-dir DIR  the data folder (else $STOCKLINE_DATA_DIR, else dataDir of FILE, else ./data)
  --config FILE   the configuration (else $STOCKLINE_CONFIG)
  --log-level L   one of ${logLevels.join(', ')} (else $STOCKLINE_LOG_LEVEL, else info)
  --demo          load the demo tenant on first run and print its key
runs until SIGTERM or SIGINT; exit status 2 when it cannot start for a reason an operator fixes
`;

export async function serveCommand(args: string[], io: CliIo): Promise<number> {
  let options: Record<string, string | boolean>;
  try {
    const parsed = parseArgs(args, { string: ['port', 'host', 'data-dir', 'config', 'log-level'], boolean: ['demo'] });
    refuseExtraArguments(parsed.positional);
    options = parsed.options;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`stockline serve: ${error.message}\n${serveUsage}`);
    return 2;
  }
  let config;
  try {
    config = loadConfig(configFileOf(options.config));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr(`stockline serve: ${error.message}\n`);
    return 2;
  }
  const port = stringOption(options.port) ?? process.env.PORT;
  if (port !== undefined) {
    const parsed = decimalInteger(port, 0, 65_535);
    if (parsed === undefined) {
      io.stderr(`stockline serve: ${stringOption(options.port) === undefined ? 'PORT' : '--port'} must be a decimal integer 0..65535 (0: any free port), got ${JSON.stringify(port)}\n`);
      return 2;
    }
    config.server.port = parsed;
  }
  const host = stringOption(options.host) ?? process.env.HOST;
  if (host === '') {
    // Fastify would read it as every interface, the opposite of what a variable left empty usually means.
    io.stderr(`stockline serve: ${stringOption(options.host) === undefined ? 'HOST' : '--host'} is empty: name an address (0.0.0.0 for every interface), or unset HOST\n`);
    return 2;
  }
  config.server.host = host ?? config.server.host;
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
  // Listening from before the start: a signal while it starts (the demo loading, say) is kept for when it is done.
  const stop = stopRequests(io);
  let running;
  try {
    running = await start({ config, adminKey: process.env.STOCKLINE_ADMIN_KEY, demo: options.demo === true, io });
  } catch (error) {
    stop.forget();
    const reason = operatorError(error, config.server);
    if (reason === undefined) throw error;
    io.stderr(`stockline serve: ${reason}\n`);
    return 2;
  }
  await stop.requested;
  try {
    await running.close();
  } catch (error) {
    io.stderr(`stockline: shutdown failed: ${(error as Error).message}\n`);
  }
  stop.forget();
  return 0;
}

/**
 * Resolves `requested` at the first SIGTERM or SIGINT. An echo of that signal (see `signalEchoMs`) is ignored;
 * a signal after it ends the process at once, as Node's default does, for a shutdown that hangs (the ledger
 * is safe against that, as against a crash).
 */
function stopRequests(io: CliIo): { requested: Promise<void>; forget: () => void } {
  let firstAtMs: number | undefined;
  let request = (): void => undefined;
  const requested = new Promise<void>((resolve) => { request = resolve; });
  const forget = (): void => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (firstAtMs === undefined) {
      firstAtMs = performance.now();
      io.stderr(`stockline: ${signal} received, finishing in-flight work\n`);
      request();
      return;
    }
    if (performance.now() - firstAtMs < signalEchoMs) return;
    io.stderr(`stockline: ${signal} received again, stopping at once\n`);
    forget();
    process.kill(process.pid, signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return { requested, forget };
}

/**
 * What an operator can fix (the configuration, a folder or port another process holds, a host that does not
 * resolve), as a sentence; undefined for anything else, which is a bug and keeps its stack trace.
 */
function operatorError(error: unknown, server: { host: string; port: number }): string | undefined {
  if (error instanceof ConfigError) return error.message;
  if (error instanceof AppError) return error.retryable ? undefined : error.message;
  // Brokers that could not be reached in the start's time are the operator's to fix, though they may come back.
  if ((error as { code?: unknown }).code === 'KAFKA_UNAVAILABLE') return (error as Error).message;
  const { code, syscall, message } = error as NodeJS.ErrnoException;
  if (code === 'EADDRINUSE') return `port ${server.port} on ${server.host} is in use by another process: stop it, or pick another port (--port, PORT)`;
  if (syscall === 'listen' || syscall === 'getaddrinfo') return `cannot listen on ${server.host}:${server.port}: ${message}`;
  return undefined;
}
