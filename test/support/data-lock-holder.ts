// A process that opens an embedded engine on a file, for the data-lock tests: `node --import tsx
// test/support/data-lock-holder.ts <file>`. Told `go [epoch ms]` on stdin, it tries to open the engine (at that
// time, spinning until then, so that several start together) and prints `locked` or `refused <code>`; then, if
// it holds the engine, `close` closes it (prints `closed`) and exits.

import { createInterface } from 'node:readline';
import { EmbeddedEngine } from '../../src/adapters/sqlite/embedded-engine.js';

const path = process.argv[2] as string;
let engine: EmbeddedEngine | undefined;
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line.startsWith('go')) {
    const atMs = Number(line.slice(3) || 0);
    while (Date.now() < atMs);
    try {
      engine = new EmbeddedEngine({ path, expiryIntervalMs: 0 });
      process.stdout.write('locked\n');
    } catch (error) {
      process.stdout.write(`refused ${String((error as { code?: unknown }).code)}\n`);
      break;
    }
  } else if (line === 'close') {
    await engine?.close();
    process.stdout.write('closed\n');
    break;
  }
}
process.exit(0);
