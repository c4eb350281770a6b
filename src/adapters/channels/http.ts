// One HTTP exchange with a channel, bounded in time and size, reduced to a response or a reason it did not happen.

import { channelLimits } from './limits.js';

export interface ExchangeRequest {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  bodyBytesMax: number;
}

export type Exchange =
  | { kind: 'response'; status: number; headers: Headers; body: string }
  /** `maybeSent`: the request may have reached the channel (false only when the connection was never made). */
  | { kind: 'unreachable'; reason: string; maybeSent: boolean };

/** How a status is handled by every connector: retry what may pass later, fail what never will. */
export type StatusClass = 'success' | 'retry' | 'failed';

export async function exchange(request: ExchangeRequest): Promise<Exchange> {
  const signal = AbortSignal.timeout(request.timeoutMs);
  try {
    const response = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      ...(request.body === undefined ? {} : { body: request.body }),
      signal,
      // A redirect is a configuration mistake; following it would re-send signed bodies elsewhere.
      redirect: 'manual',
    });
    const body = await readCapped(response, request.bodyBytesMax);
    return { kind: 'response', status: response.status, headers: response.headers, body };
  } catch (error) {
    if (signal.aborted) return { kind: 'unreachable', reason: `no answer within ${request.timeoutMs} ms`, maybeSent: true };
    return { kind: 'unreachable', reason: describeNetworkError(error), maybeSent: !connectFailed(error) };
  }
}

/** Errors raised before a connection exists: nothing of the request can have reached the channel. */
const connectErrorCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function causeCodeOf(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const cause = (error as { cause?: unknown }).cause;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

function connectFailed(error: unknown): boolean {
  const code = causeCodeOf(error);
  return code !== undefined && connectErrorCodes.has(code);
}

/** Reads the body as text, refusing more than `bytesMax` so a broken peer cannot fill the heap. */
async function readCapped(response: Response, bytesMax: number): Promise<string> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > bytesMax) {
      await reader.cancel();
      throw new Error(`response larger than ${bytesMax} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return 'network error';
  const code = causeCodeOf(error);
  if (code !== undefined) return `network error (${code})`;
  if (error.message.startsWith('response larger than')) return error.message;
  return `network error: ${error.message}`;
}

export function classifyStatus(status: number): StatusClass {
  if (status >= 200 && status < 300) return 'success';
  // 408 and 425 say "try again"; 429 is throttling; 5xx is the channel's own trouble.
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'retry';
  return 'failed';
}

/** Retry-After as delay-seconds or an HTTP date; undefined when absent or unreadable. Capped. */
export function parseRetryAfterMs(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  let delayMs: number;
  if (/^\d{1,10}(\.\d{1,3})?$/.test(text)) {
    delayMs = Math.ceil(Number(text) * 1000);
  } else {
    const atMs = Date.parse(text);
    if (Number.isNaN(atMs)) return undefined;
    delayMs = atMs - nowMs;
  }
  return Math.min(Math.max(delayMs, 0), channelLimits.retryAfterMsMax);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
