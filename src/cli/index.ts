// The `stockline` command dispatcher: one file per command beside this one.

import { asksForHelp, processIo } from './io.js';
import type { CliIo } from './io.js';
import { replayCommand, replayUsage } from './replay.js';
import { validateCommand, validateUsage } from './validate.js';

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

stockline <command> --help (or -h) prints a command's options.
`;

type Handler = (args: string[], io: CliIo) => Promise<number>;

/** Each command, and its usage text; both are loaded only for the command that runs. */
const commands: Record<string, { run: () => Promise<Handler>; usage: () => Promise<string> }> = {
  serve: { run: async () => (await import('./serve.js')).serveCommand, usage: async () => (await import('./serve.js')).serveUsage },
  validate: { run: async () => validateCommand, usage: async () => validateUsage },
  topics: { run: async () => (await import('./topics.js')).topicsCommand, usage: async () => (await import('./topics.js')).topicsUsage },
  keys: { run: async () => (await import('./commands.js')).keysMain, usage: async () => (await import('./keys.js')).keysUsage },
  ingest: { run: async () => (await import('./commands.js')).ingestMain, usage: async () => (await import('./ingest.js')).ingestUsage },
  reconcile: { run: async () => (await import('./commands.js')).reconcileMain, usage: async () => (await import('./reconcile.js')).reconcileUsage },
  demo: { run: async () => (await import('./demo.js')).demoCommand, usage: async () => (await import('./demo.js')).demoUsage },
  replay: { run: async () => replayCommand, usage: async () => replayUsage },
};

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(usage);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    io.stderr(`stockline: unknown command ${name}\n${usage}`);
    return 2;
  }
  // Help is answered here, before a command reads its arguments, so it never opens or creates anything.
  if (asksForHelp(rest)) {
    io.stdout(await command.usage());
    return 0;
  }
  return (await command.run())(rest, io);
}
