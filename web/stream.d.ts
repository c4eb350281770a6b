// Types of stream.js, for the unit tests and editors; the browser loads the .js file only.

export type StreamStatus = 'connecting' | 'live' | 'reconnecting' | 'denied' | 'closed';

export interface EventSourceLike {
  readyState: number;
  onopen: (() => void) | null;
  onerror: (() => void) | null;
  addEventListener(type: string, listener: (message: { data?: string; lastEventId?: string }) => void): void;
  close(): void;
}

export const streamEventTypes: string[];
export const reopenDelayMsMin: number;
export const reopenDelayMsMax: number;
export function reopenDelayMs(attempt: number, random: number): number;
export function resumeUrl(url: string, lastEventId: string | undefined): string;
export function openStream(options: {
  url: string;
  onEvent: (type: string, data: unknown, id: string | undefined) => void;
  onStatus: (status: StreamStatus) => void;
  onReopen?: () => void;
  checkAccess?: () => Promise<'ok' | 'denied'>;
  EventSourceImpl?: new (url: string) => EventSourceLike;
  random?: () => number;
}): { close(): void };
