// The worked example: valid events, a state that replays to what it says, and files in step with their builder.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildWorkedExample, examplePath, expectedStatePath, renderWorkedExample } from '../../examples/build-worked-example.js';
import type { WorkedExample } from '../../examples/build-worked-example.js';

const exampleFile = 'examples/worked-example-inventory-sync.json';
const stateFile = 'examples/worked-example-expected-state.json';
const scratch = mkdtempSync(join(tmpdir(), 'stockline-worked-example-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function stockline(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['bin/stockline.js', ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function committed(): WorkedExample {
  return JSON.parse(readFileSync(exampleFile, 'utf8')) as WorkedExample;
}

describe('examples/worked-example-inventory-sync.json', () => {
  it('passes stockline validate', () => {
    const result = stockline(['validate', exampleFile]);
    expect(result.stdout).toMatch(/^(\d+) valid, 0 invalid \(of \1 events\)$/m);
    expect(result.status).toBe(0);
  });

  it('replays to the expected state it carries, and to the separate expected-state file', () => {
    const inline = stockline(['replay', exampleFile, '--expect', exampleFile]);
    expect(inline.stdout).toContain('the state matches');
    expect(inline.status).toBe(0);
    const separate = stockline(['replay', exampleFile, '--expect', stateFile]);
    expect(separate.stdout).toContain('the state matches');
    expect(separate.status).toBe(0);
  });

  it('is what the builder produces from the ledger today', () => {
    const rendered = renderWorkedExample(buildWorkedExample());
    // If this fails after a change to the ledger: run `npx tsx examples/build-worked-example.ts` and review the diff.
    expect(readFileSync(examplePath, 'utf8')).toBe(rendered.example);
    expect(readFileSync(expectedStatePath, 'utf8')).toBe(rendered.expectedState);
  });

  it('tells the story it claims: steps add up to the log, with the stale update, the expiry, the oversell and the delete in it', () => {
    const example = committed();
    expect(example.steps.flatMap((step) => step.events)).toEqual(example.events);
    const kinds = example.events.map((event) => (event.type === 'conflict_detected' ? `conflict:${event.data.kind}` : event.type));
    for (const kind of ['conflict:stale_sequence', 'conflict:oversell', 'sku_deleted', 'order_fulfilled', 'reservation_released', 'sync_complete']) {
      expect(kinds).toContain(kind);
    }
    const expired = example.events.filter((event) => event.type === 'reservation_released' && event.data.reason === 'expired');
    expect(expired).toHaveLength(1);
    const stale = example.steps.find((step) => step.rejections?.some((rejection) => rejection.code === 'STALE_SEQUENCE'));
    const before = example.steps[example.steps.indexOf(stale as (typeof example.steps)[number]) - 1];
    expect(stale?.availableToSell).toEqual(before?.availableToSell);
  });

  it('makes replay exit 1 with a readable diff when the expected state is tampered with', () => {
    const example = committed();
    const mug = example.expectedState.tenants.northwind?.skus['MUG-STONE']?.locations['dc-north'];
    expect(mug?.onHand).toBe(108);
    (mug as { onHand: number }).onHand = 168;
    const tampered = join(scratch, 'tampered.json');
    writeFileSync(tampered, JSON.stringify(example));
    const result = stockline(['replay', exampleFile, '--expect', tampered]);
    expect(result.status).toBe(1);
    expect(result.stdout).toContain('the state differs');
    expect(result.stdout).toContain('/tenants/northwind/skus/MUG-STONE/locations/dc-north/onHand: expected 168, got 108');
  });
});
