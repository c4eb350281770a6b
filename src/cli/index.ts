// The `stockline` command dispatcher: one file per command beside this one.

import { processIo } from './io.js';
import type { CliIo } from './io.js';
import { replayCommand } from './replay.js';
import { validateCommand } from './validate.js';

const usage = `usage: stockline <command> [options]

commands:
  serve                      run the HTTP API on the embedded engine (npm start)
  validate <file|->          check events against schema/inventory-event.schema.json
  replay <file> [--expect <state>]   fold events into a state; compare with an expected state
  keys create --tenant T --scopes read,write   create an API key (printed once); keys list; keys revoke ID
  ingest debezium <file|->   apply Debezium change events
  reconcile [--tenant T] [--channel C] [--repair] [--json]   compare channels with the desired state
  topics scaffold [--config FILE] [--dry-run]   create or check the Kafka topics and ACLs
  demo [--compare-polling] [--duration S] [--shoppers N] [--exit]   a flash sale on your laptop
`;

type Handler = (args: string[], io: CliIo) => Promise<number>;

const commands: Record<string, () => Promise<Handler>> = {
  serve: async () => (await import('./serve.js')).serveCommand,
  validate: async () => validateCommand,
  topics: async () => (await import('./topics.js')).topicsCommand,
  keys: async () => (await import('./commands.js')).keysMain,
  ingest: async () => (await import('./commands.js')).ingestMain,
  reconcile: async () => (await import('./commands.js')).reconcileMain,
  demo: async () => (await import('./demo.js')).demoCommand,
  replay: async () => replayCommand,
};

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === 'help') {
    io.stdout(usage);
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (load === undefined) {
    io.stderr(`stockline: unknown command ${name}\n${usage}`);
    return 2;
  }
  return (await load())(rest, io);
}
