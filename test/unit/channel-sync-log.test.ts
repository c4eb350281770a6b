// What the push worker logs of a channel that refuses pushes: the channel's answer at once, then at most a line a
// minute per kind with the count since the last, and one line when it acknowledges again; never a line per push.

import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelOutbox } from '../../src/adapters/sqlite/channel-outbox.js';
import type { ChannelConnector, ChannelPush, PushResult } from '../../src/adapters/channels/connector.js';
import { ChannelSync, syncLimits } from '../../src/app/channel-sync.js';
import type { CommandBus, CommandInput, Submitted } from '../../src/app/ports.js';
import { ManualClock } from '../support/channel-sync.js';

const skuCount = 50;

/** Answers every push with `answer` (a function of the push), counting them. */
class ScriptedChannel implements ChannelConnector {
  readonly maxConcurrency = 8;
  readonly ratePerSecond = Number.POSITIVE_INFINITY;
  pushes = 0;
  answer: (push: ChannelPush) => PushResult = () => ({ kind: 'ok' });
  constructor(readonly channel: string) {}
  async push(push: ChannelPush): Promise<PushResult> {
    this.pushes += 1;
    return this.answer(push);
  }
  async read(): Promise<Map<string, number>> { return new Map(); }
  async close(): Promise<void> {}
}

const bus: CommandBus = {
  submit: async () => ({ outcome: { events: [] } }) as unknown as Submitted,
  submitMany: async (commands: CommandInput[]) => commands.map(() => ({ outcome: { events: [] } }) as unknown as Submitted),
};

interface Line { level: 'info' | 'warn' | 'error'; fields: Record<string, unknown>; message: string }

const open: Array<{ db: Database.Database; sync: ChannelSync }> = [];

afterEach(() => {
  for (const { db, sync } of open.splice(0)) {
    void sync.stop();
    db.close();
  }
});

function harness(): { clock: ManualClock; channel: ScriptedChannel; lines: Line[]; setAll(quantity: number): void; sync: ChannelSync } {
  const clock = new ManualClock();
  const db = new Database(':memory:');
  const outbox = new ChannelOutbox(db);
  outbox.migrate();
  const channel = new ScriptedChannel('portal');
  const lines: Line[] = [];
  const sync = new ChannelSync({
    outbox, connectors: new Map([['portal', channel as ChannelConnector]]), bus, clock, random: () => 0.5, timer: clock,
    log: {
      info: (fields, message) => lines.push({ level: 'info', fields: fields as Record<string, unknown>, message }),
      warn: (fields, message) => lines.push({ level: 'warn', fields: fields as Record<string, unknown>, message }),
      error: (fields, message) => lines.push({ level: 'error', fields: fields as Record<string, unknown>, message }),
    },
  });
  open.push({ db, sync });
  let position = 0;
  const setAll = (quantity: number): void => {
    const rows = [];
    for (let index = 0; index < skuCount; index += 1) {
      position += 1;
      rows.push({ tenant: 'acme', channel: 'portal', sku: `sku-${index}`, quantity, changedAtMs: clock.now, position });
    }
    outbox.upsertDesired(rows);
    sync.kick();
  };
  return { clock, channel, lines, setAll, sync };
}

describe('ChannelSync logs of a refusing channel', () => {
  it('names the answer at once, then logs a line a minute with the count, not a line per retried push', async () => {
    const h = harness();
    h.channel.answer = () => ({ kind: 'retry', reason: 'receiver answered 500: upstream down' });
    h.setAll(5);
    h.sync.start();
    await h.clock.advance(1);
    expect(h.lines).toEqual([{
      level: 'warn', message: 'channel push will be retried',
      fields: expect.objectContaining({ tenant: 'acme', channel: 'portal', reason: 'receiver answered 500: upstream down', retried: 1 }),
    }]);
    await h.clock.advance(3 * syncLimits.refusalLogIntervalMs);
    // Every SKU retried several times (backoff up to 30 s) in three minutes: hundreds of pushes.
    expect(h.channel.pushes).toBeGreaterThan(5 * skuCount);
    const retryLines = h.lines.filter((line) => line.message === 'channel push will be retried');
    expect(retryLines.length).toBeGreaterThanOrEqual(3);
    expect(retryLines.length).toBeLessThanOrEqual(4);
    const counted = retryLines.reduce((sum, line) => sum + (line.fields.retried as number), 0);
    expect(counted).toBeLessThanOrEqual(h.channel.pushes);
    expect(counted).toBeGreaterThan(h.channel.pushes - skuCount * 4);
  });

  it('logs a failure at once even while retries are being counted, and the recovery once', async () => {
    const h = harness();
    h.channel.answer = () => ({ kind: 'retry', reason: 'receiver answered 500' });
    h.setAll(5);
    h.sync.start();
    await h.clock.advance(1_000);
    h.channel.answer = () => ({ kind: 'failed', reason: 'receiver answered 400: unknown sku' });
    await h.clock.advance(syncLimits.backoffCapMs);
    const failedLines = h.lines.filter((line) => line.message === 'channel push failed; it will be tried again later');
    expect(failedLines).toHaveLength(1);
    expect(failedLines[0]?.fields).toMatchObject({ channel: 'portal', reason: 'receiver answered 400: unknown sku', failed: 1 });
    h.channel.answer = () => ({ kind: 'ok' });
    await h.clock.advance(syncLimits.failedRetryDelayMs);
    const recoveries = h.lines.filter((line) => line.message === 'channel acknowledges pushes again');
    expect(recoveries).toHaveLength(1);
    expect(recoveries[0]).toMatchObject({ level: 'info', fields: { channel: 'portal' } });
    expect(h.lines.at(-1)?.message).toBe('channel acknowledges pushes again');
  });

  it('logs nothing for a channel that acknowledges every push', async () => {
    const h = harness();
    h.setAll(5);
    h.sync.start();
    await h.clock.advance(1_000);
    expect(h.channel.pushes).toBe(skuCount);
    expect(h.lines).toEqual([]);
  });
});
