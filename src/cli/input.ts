// Reads JSON documents for the CLI: one value, a JSON array, or NDJSON, from a file or stdin.

import { readFile } from 'node:fs/promises';

export class InputError extends Error {
  readonly code = 'UNREADABLE_INPUT';
}

async function readText(path: string, stdin: NodeJS.ReadableStream): Promise<string> {
  if (path !== '-') {
    try {
      return await readFile(path, 'utf8');
    } catch (error) {
      throw new InputError(`cannot read ${path}: ${(error as Error).message}`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Parses the text as one JSON value (an array gives its items) or, failing that, as NDJSON. */
export function parseDocuments(text: string, name: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') throw new InputError(`${name} is empty`);
  try {
    const value: unknown = JSON.parse(trimmed);
    return Array.isArray(value) ? value : [value];
  } catch {
    // Not a single JSON value: read it as one JSON value per line.
  }
  const documents: unknown[] = [];
  const lines = trimmed.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const line = (lines[index] as string).trim();
    if (line === '') continue;
    try {
      documents.push(JSON.parse(line));
    } catch (error) {
      throw new InputError(`${name}, line ${index + 1}: not JSON (${(error as Error).message})`);
    }
  }
  return documents;
}

export async function readDocuments(path: string, stdin: NodeJS.ReadableStream): Promise<unknown[]> {
  return parseDocuments(await readText(path, stdin), path === '-' ? 'stdin' : path);
}

export async function readJson(path: string, stdin: NodeJS.ReadableStream): Promise<unknown> {
  const text = await readText(path, stdin);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InputError(`${path === '-' ? 'stdin' : path}: not JSON (${(error as Error).message})`);
  }
}

/** An events file is events (one, an array, NDJSON) or an object with an `events` array (a worked example). */
export function eventsOf(documents: unknown[]): unknown[] {
  const [first] = documents;
  if (documents.length === 1 && first !== null && typeof first === 'object' && Array.isArray((first as { events?: unknown }).events)) {
    return (first as { events: unknown[] }).events;
  }
  return documents;
}
