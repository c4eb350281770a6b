// `stockline validate` and validators/validate-schema.sh: exit codes and messages, run as a user runs them.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const run = (command: string, args: string[], input?: string) => {
  const result = spawnSync(command, args, { input, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
};
const cli = (args: string[], input?: string) => run('node', ['bin/stockline.js', 'validate', ...args], input);
const wrapper = (args: string[], input?: string) => run('validators/validate-schema.sh', args, input);

describe.each([['stockline validate', cli], ['validators/validate-schema.sh', wrapper]])('%s', (_name, validate) => {
  it('exits 0 for valid NDJSON', () => {
    const result = validate(['test/fixtures/events/valid.ndjson']);
    expect(result.stdout).toContain('6 valid, 0 invalid');
    expect(result.status).toBe(0);
  });

  it('exits 1 and names the index, pointer and reason of every violation', () => {
    const result = validate(['test/fixtures/events/invalid.json']);
    expect(result.status).toBe(1);
    expect(result.stdout).toContain('event 1: /tenant: must match pattern');
    expect(result.stdout).toContain('event 1: /data/onHand: must be <= 1000000000');
    expect(result.stdout).toContain('event 2: /time: must match format "date-time"');
    expect(result.stdout).toContain('event 2: /data/coupon: is not allowed here');
    expect(result.stdout).toContain('event 2: /data/lines: must NOT have fewer than 1 items');
    expect(result.stdout).not.toContain('event 0:');
    expect(result.stderr).toContain('1 valid, 2 invalid');
  });

  it('reads one event from stdin', () => {
    const first = readFileSync('test/fixtures/events/valid.ndjson', 'utf8').split('\n')[0] as string;
    expect(validate(['-'], first).status).toBe(0);
  });

  it('exits 2 for unreadable input', () => {
    const missing = validate(['test/fixtures/events/missing.json']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('cannot read');
    const garbled = validate(['-'], '{"id": "e1"}\n{not json');
    expect(garbled.status).toBe(2);
    expect(garbled.stderr).toContain('line 2: not JSON');
  });

  it('exits 2 for bad usage', () => {
    expect(validate([]).status).toBe(2);
  });
});
