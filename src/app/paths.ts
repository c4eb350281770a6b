// Where Stockline's shipped files live, whether it runs from source or from the built package.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The package root: the nearest folder above this module holding `schema/`. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'schema', 'inventory-event.schema.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the Stockline package root (schema/inventory-event.schema.json)');
    dir = parent;
  }
  root = dir;
  return dir;
}

export function packagePath(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}
