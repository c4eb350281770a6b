// The dashboard's stream follower: status while the browser retries, reopening with backoff and resume, refused keys.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStream, reopenDelayMs, reopenDelayMsMax, resumeUrl } from '../../web/stream.js';
import type { EventSourceLike, StreamStatus } from '../../web/stream.js';

/** An EventSource the test drives by hand. */
class FakeEventSource implements EventSourceLike {
  static opened: FakeEventSource[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  private readonly listeners = new Map<string, (message: { data?: string; lastEventId?: string }) => void>();

  constructor(readonly url: string) {
    FakeEventSource.opened.push(this);
  }

  addEventListener(type: string, listener: (message: { data?: string; lastEventId?: string }) => void): void {
    this.listeners.set(type, listener);
  }

  close(): void {
    this.closed = true;
    this.readyState = 2;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.();
  }

  emit(type: string, data: string, lastEventId = ''): void {
    this.listeners.get(type)?.({ data, lastEventId });
  }

  fail(readyState: 0 | 2): void {
    this.readyState = readyState;
    this.onerror?.();
  }
}

function follow(options: { checkAccess?: () => Promise<'ok' | 'denied'>; onReopen?: () => void } = {}) {
  const statuses: StreamStatus[] = [];
  const events: Array<[string, unknown, string | undefined]> = [];
  const stream = openStream({
    url: '/v1/tenants/acme/stream?access_token=k',
    onEvent: (type, data, id) => events.push([type, data, id]),
    onStatus: (status) => statuses.push(status),
    EventSourceImpl: FakeEventSource,
    random: () => 0.5,
    ...options,
  });
  return { stream, statuses, events, source: () => FakeEventSource.opened.at(-1) as FakeEventSource };
}

beforeEach(() => {
  FakeEventSource.opened = [];
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('openStream', () => {
  it('is live once open and hands over parsed events of the known types', () => {
    const { statuses, events, source } = follow();
    source().open();
    source().emit('availability', '{"sku":"A","available":3}', '41');
    source().emit('conflict', 'not json', '42');
    expect(statuses).toEqual(['connecting', 'live']);
    expect(events).toEqual([['availability', { sku: 'A', available: 3 }, '41']]);
  });

  it('says reconnecting while the browser retries on its own, and live again after', () => {
    const { statuses, source } = follow();
    source().open();
    source().fail(0);
    source().open();
    expect(statuses).toEqual(['connecting', 'live', 'reconnecting', 'live']);
    expect(FakeEventSource.opened).toHaveLength(1);
  });

  it('reopens after the browser gives up, resuming after the last id seen', async () => {
    const onReopen = vi.fn();
    const { source } = follow({ onReopen });
    source().open();
    source().emit('availability', '{"sku":"A"}', '41');
    source().fail(2);
    expect(source().closed).toBe(true);
    await vi.advanceTimersByTimeAsync(reopenDelayMs(0, 0.5));
    expect(FakeEventSource.opened).toHaveLength(2);
    expect(source().url).toBe('/v1/tenants/acme/stream?access_token=k&lastEventId=41');
    source().open();
    expect(onReopen).not.toHaveBeenCalled();
  });

  it('asks the caller to read state again when it reopens without an id to resume from', async () => {
    const onReopen = vi.fn();
    const { source } = follow({ onReopen });
    source().fail(2);
    await vi.advanceTimersByTimeAsync(reopenDelayMs(0, 0.5));
    source().open();
    expect(onReopen).toHaveBeenCalledTimes(1);
  });

  it('stops and says denied when the key is refused', async () => {
    const { statuses, source } = follow({ checkAccess: async () => 'denied' });
    source().fail(2);
    await vi.advanceTimersByTimeAsync(reopenDelayMsMax);
    expect(statuses.at(-1)).toBe('denied');
    expect(FakeEventSource.opened).toHaveLength(1);
  });

  it('backs off longer after each failed reopen', async () => {
    const { source } = follow();
    source().fail(2);
    await vi.advanceTimersByTimeAsync(reopenDelayMs(0, 0.5));
    source().fail(2);
    await vi.advanceTimersByTimeAsync(reopenDelayMs(0, 0.5));
    expect(FakeEventSource.opened).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(reopenDelayMs(1, 0.5) - reopenDelayMs(0, 0.5));
    expect(FakeEventSource.opened).toHaveLength(3);
  });

  it('closes for good', async () => {
    const { stream, statuses, source } = follow();
    source().fail(2);
    stream.close();
    await vi.advanceTimersByTimeAsync(reopenDelayMsMax);
    expect(FakeEventSource.opened).toHaveLength(1);
    expect(statuses.at(-1)).toBe('closed');
  });
});

describe('reopen helpers', () => {
  it('doubles the delay up to the maximum, with jitter in its upper half', () => {
    expect(reopenDelayMs(0, 0)).toBe(500);
    expect(reopenDelayMs(0, 0.999)).toBeLessThanOrEqual(1000);
    expect(reopenDelayMs(3, 0)).toBe(4000);
    expect(reopenDelayMs(50, 0.999)).toBeLessThanOrEqual(reopenDelayMsMax);
  });

  it('adds lastEventId to relative and absolute URLs, and leaves them alone without one', () => {
    expect(resumeUrl('/s?access_token=k', '7')).toBe('/s?access_token=k&lastEventId=7');
    expect(resumeUrl('http://h:1/s?access_token=k', '7')).toBe('http://h:1/s?access_token=k&lastEventId=7');
    expect(resumeUrl('/s?access_token=k', undefined)).toBe('/s?access_token=k');
  });
});
