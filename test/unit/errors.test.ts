// Keeps the error catalogue, docs/errors.md, the ledger's rejection codes and the engines' AppError codes in step.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { errorCatalogue, isErrorCode, problemTypeOf } from '../../src/errors.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

interface DocumentedRow {
  status: number;
  retryable: boolean;
}

/** Rows of the tables in docs/errors.md: | `CODE` | status | yes/no | meaning |. */
function documented(): Map<string, DocumentedRow> {
  const rows = new Map<string, DocumentedRow>();
  for (const line of read('docs/errors.md').split('\n')) {
    const match = /^\| `([A-Z_]+)` \| (\d{3}) \| (yes|no) \| .+ \|$/.exec(line);
    if (match === null) continue;
    expect(rows.has(match[1] as string), `${match[1]} is documented twice`).toBe(false);
    rows.set(match[1] as string, { status: Number(match[2]), retryable: match[3] === 'yes' });
  }
  return rows;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('error catalogue', () => {
  it('documents every code with its status and retryability, and nothing else', () => {
    const rows = documented();
    expect(rows.size).toBeGreaterThan(0);
    for (const [code, spec] of Object.entries(errorCatalogue)) {
      expect(rows.get(code), `${code} is missing from docs/errors.md`).toEqual({ status: spec.status, retryable: spec.retryable });
    }
    for (const code of rows.keys()) expect(isErrorCode(code), `docs/errors.md documents ${code}, which src/errors.ts lacks`).toBe(true);
  });

  it('maps every rejection code of the ledger', () => {
    const codes = [...read('src/core/rejections.ts').matchAll(/code: '([A-Z_]+)'/g)].map((match) => match[1] as string);
    expect(codes).toContain('INSUFFICIENT_STOCK');
    for (const code of codes) expect(isErrorCode(code), `rejection ${code} has no entry in src/errors.ts`).toBe(true);
  });

  it('maps every AppError code thrown in src/', () => {
    const codes = sourceFiles('src').flatMap((path) => [...read(path).matchAll(/new AppError\(\s*'([A-Z_]+)'/g)].map((match) => match[1] as string));
    expect(codes).toContain('ENGINE_CLOSED');
    for (const code of codes) expect(isErrorCode(code), `AppError ${code} has no entry in src/errors.ts`).toBe(true);
  });

  it('gives every code an error status, a title, and Retry-After sense', () => {
    for (const [code, spec] of Object.entries(errorCatalogue)) {
      expect(spec.status, code).toBeGreaterThanOrEqual(400);
      expect(spec.status, code).toBeLessThan(600);
      expect(spec.title.length, code).toBeGreaterThan(0);
      if (spec.retryable) expect(spec.status, `${code} is retryable, so it is a 503`).toBe(503);
    }
  });

  it('names problem types after their codes', () => {
    expect(problemTypeOf('INSUFFICIENT_STOCK')).toBe('https://stockline.dev/problems/insufficient-stock');
  });
});
