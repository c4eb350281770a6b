#!/usr/bin/env node
// Stockline's command line; the commands live in dist/src/cli (built by `npm run build`).
import { main } from '../dist/src/cli/index.js';

process.exitCode = await main(process.argv.slice(2));
