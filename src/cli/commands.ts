// Commands that need the data folder: they open it here and hand the parts to the command's own module.

import { existsSync } from 'node:fs';
import type { ChannelConfig } from '../adapters/channels/factory.js';
import { createConnector } from '../adapters/channels/factory.js';
import { ChannelOutbox } from '../adapters/sqlite/channel-outbox.js';
import { AppError } from '../app/engine.js';
import { ConfigError } from '../app/config.js';
import { contextOf, databaseFile, openDatabase, openEngine } from './context.js';
import type { CliIo } from './io.js';

function fail(io: CliIo, command: string, error: unknown): number {
  if (error instanceof ConfigError || (error instanceof AppError && !error.retryable)) {
    io.stderr(`stockline ${command}: ${error.message}\n`);
    return 2;
  }
  throw error;
}

export async function keysMain(args: string[], io: CliIo): Promise<number> {
  const { keysCommand } = await import('./keys.js');
  return keysCommand(args, io, (dataDir, file) => openDatabase(dataDir, file));
}

/** Opens the ledger only once every argument is checked: a mistake, or `--help`, leaves the folder as it was. */
export async function ingestMain(args: string[], io: CliIo): Promise<number> {
  const { ingestRequestOf, noLedger, runIngest } = await import('./ingest.js');
  const request = ingestRequestOf(args, io);
  if (typeof request === 'number') return request;
  const refused = noLedger(request);
  if (refused !== undefined) {
    io.stderr(`stockline ingest: ${refused}\n`);
    return 2;
  }
  let engine;
  try {
    engine = openEngine(request.dataDir);
  } catch (error) {
    return fail(io, 'ingest', error);
  }
  try {
    return await runIngest(request, io, engine, engine);
  } finally {
    await engine.close();
  }
}

export async function reconcileMain(args: string[], io: CliIo): Promise<number> {
  const { reconcileRequestOf, runReconcile, unknownChannel, usageFailure } = await import('./reconcile.js');
  let request;
  let context;
  try {
    request = reconcileRequestOf(args);
    context = contextOf(request.options);
  } catch (error) {
    return error instanceof ConfigError ? fail(io, 'reconcile', error) : usageFailure(io, error);
  }
  const configs = context.config.channels as unknown as ChannelConfig[];
  const refused = unknownChannel(request.channel, configs.map((config) => config.id));
  if (refused !== undefined) {
    io.stderr(`stockline reconcile: ${refused}\n`);
    return 2;
  }
  // The outbox lives beside the ledger in the embedded engine, in the node's own file on a Kafka node.
  const file = context.config.engine === 'kafka' ? 'stockline-node.db' : 'stockline.db';
  if (!existsSync(databaseFile(context.dataDir, file))) {
    // Opening would make an empty file, and an empty outbox reports no drift.
    io.stderr(`stockline reconcile: no ${file} in ${context.dataDir}: give the data folder of a node that has run (--data-dir)\n`);
    return 2;
  }
  let connectors;
  try {
    connectors = new Map(configs.map((config) => [config.id, createConnector(config, process.env)]));
  } catch (error) {
    io.stderr(`stockline reconcile: ${(error as Error).message}\n`);
    return 2;
  }
  const closeConnectors = (): Promise<unknown> => Promise.all([...connectors.values()].map((connector) => connector.close()));
  let db;
  try {
    db = openDatabase(context.dataDir, file);
  } catch (error) {
    await closeConnectors();
    return fail(io, 'reconcile', error);
  }
  try {
    const outbox = new ChannelOutbox(db);
    outbox.migrate();
    return await runReconcile(request, io, { outbox, connectors });
  } finally {
    await closeConnectors();
    db.close();
  }
}
