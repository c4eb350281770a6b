// `stockline validate <file|->`: checks events against the contract; exit 0 valid, 1 invalid, 2 unreadable or bad usage.

import { validateEvent } from '../app/event-validation.js';
import { eventsOf, InputError, readDocuments } from './input.js';
import type { CliIo } from './io.js';

export const validateUsage = 'usage: stockline validate <file|->   (one event, a JSON array of events, NDJSON, or {"events": [...]})\n';

export async function validateCommand(args: string[], io: CliIo): Promise<number> {
  if (args.length !== 1 || args[0] === '--help') {
    io.stderr(validateUsage);
    return 2;
  }
  let documents: unknown[];
  try {
    documents = eventsOf(await readDocuments(args[0] as string, io.stdin));
  } catch (error) {
    if (error instanceof InputError) {
      io.stderr(`stockline validate: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  let invalid = 0;
  documents.forEach((document, index) => {
    const violations = validateEvent(document);
    if (violations.length === 0) return;
    invalid += 1;
    for (const violation of violations) io.stdout(`event ${index}: ${violation.pointer}: ${violation.message}\n`);
  });
  const summary = `${documents.length - invalid} valid, ${invalid} invalid (of ${documents.length} events)\n`;
  if (invalid > 0) io.stderr(summary);
  else io.stdout(summary);
  return invalid > 0 ? 1 : 0;
}
