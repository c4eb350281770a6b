// What an operator gets when the embedded engine cannot write a batch (a full disk): every refused command counted,
// and a bounded number of log lines, since on a full disk every write fails and the log may share that disk.

import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/app/engine.js';
import { Metrics } from '../../src/app/metrics.js';
import { storageFailureLog } from '../../src/main.js';

interface Line { level: 'warn' | 'error'; fields: Record<string, unknown>; message: string }

function recorder(): { lines: Line[]; logger: { warn(fields: object, message: string): void; error(fields: object, message: string): void } } {
  const lines: Line[] = [];
  const record = (level: Line['level']) => (fields: object, message: string): void => { lines.push({ level, fields: fields as Record<string, unknown>, message }); };
  return { lines, logger: { warn: record('warn'), error: record('error') } };
}

async function unwritten(metrics: Metrics): Promise<Record<string, number>> {
  const metric = await metrics.registry.getSingleMetric('stockline_commands_unwritten_total')?.get();
  return Object.fromEntries((metric?.values ?? []).map(({ labels, value }) => [String(labels.code), value]));
}

const diskFull = new AppError('STORAGE_FAILED', 'the batch could not be made durable: database or disk is full', true, 503);

describe('storageFailureLog', () => {
  it('counts every refused command, logs the first batch at once and then a line a minute with what failed since', async () => {
    const { lines, logger } = recorder();
    const metrics = new Metrics(Date.now, { processMetrics: false });
    let nowMs = 0;
    const failed = storageFailureLog(logger, metrics, () => nowMs);
    failed(diskFull, 3);
    for (let batch = 0; batch < 100; batch += 1) {
      nowMs += 500;
      failed(diskFull, 2);
    }
    expect(await unwritten(metrics)).toEqual({ STORAGE_FAILED: 203, STORAGE_UNCERTAIN: 0 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', fields: { code: 'STORAGE_FAILED', error: diskFull.message, batches: 1, commands: 3 } });
    // No stack: the cause is the disk, not the code.
    expect(JSON.stringify(lines[0]?.fields)).not.toContain('at ');
    nowMs = 60_000;
    failed(diskFull, 1);
    expect(lines).toHaveLength(2);
    // 100 batches after the first line: 80 inside its minute, 19 more counted, then this one, which opens the next.
    expect(lines[1]?.fields).toMatchObject({ batches: 101, commands: 201 });
  });

  it('logs at error, every time, the failure after which the engine takes no more commands', async () => {
    const { lines, logger } = recorder();
    const metrics = new Metrics(Date.now, { processMetrics: false });
    const failed = storageFailureLog(logger, metrics, () => 0);
    failed(diskFull, 1);
    failed(new AppError('STORAGE_UNCERTAIN', 'the change was written but could not be made durable: EIO', false, 503), 4);
    expect(lines.map(({ level }) => level)).toEqual(['warn', 'error']);
    expect(lines[1]?.message).toMatch(/^the engine takes no more commands/);
    expect(await unwritten(metrics)).toEqual({ STORAGE_FAILED: 1, STORAGE_UNCERTAIN: 4 });
  });
});
