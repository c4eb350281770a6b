#!/usr/bin/env -S node --max-semi-space-size=64
// Stockline's command line; the commands live in dist/src/cli (built by `npm run build`).
//
// The flag above gives V8's young generation 64 MB a half instead of 16: a busy server's per-request objects
// then die young instead of being copied into the old generation. Under the flash-sale bench that is 5-15 %
// more reservations a second (BENCHMARKS.md). `npm start` passes it too; `node bin/stockline.js` runs without.
import { main } from '../dist/src/cli/index.js';

process.exitCode = await main(process.argv.slice(2));
