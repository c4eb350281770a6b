// Runs once before the suite: builds nothing, starts nothing; prepares the artifacts folder tests write to.

import { mkdirSync } from 'node:fs';

export default function setup(): void {
  mkdirSync('test-artifacts', { recursive: true });
}
