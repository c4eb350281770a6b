// The Stockline-Signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`, and its check.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { channelLimits } from '../limits.js';

const hexSha256Pattern = /^[0-9a-f]{64}$/;
const unixSecondsPattern = /^[0-9]{1,12}$/;

function mac(secret: string, unixSeconds: number | string, body: string | Buffer): Buffer {
  return createHmac('sha256', secret).update(`${unixSeconds}.`).update(body).digest();
}

export function signStocklinePayload(body: string | Buffer, secret: string, unixSeconds: number): string {
  return `t=${unixSeconds},v1=${mac(secret, unixSeconds, body).toString('hex')}`;
}

/**
 * For receivers: true when one `v1` of the header is the HMAC of `t.body` and `t` is within `toleranceSeconds` of
 * `nowSeconds`. The timestamp is signed too, so an old delivery cannot be replayed with a fresh `t`. Several `v1`
 * values are allowed, so a sender can sign with an old and a new secret while the secret is rotated.
 */
export function verifyStocklineSignature(
  body: string | Buffer,
  header: string | undefined,
  secret: string,
  nowSeconds: number,
  toleranceSeconds: number = channelLimits.signatureToleranceSecondsDefault,
): boolean {
  if (header === undefined || secret === '' || header.length > channelLimits.signatureHeaderLengthMax) return false;
  let timestamp: string | undefined;
  const signatures: Buffer[] = [];
  for (const part of header.split(',')) {
    const [name, value, ...rest] = part.trim().split('=');
    if (value === undefined || rest.length > 0) return false;
    if (name === 't') timestamp = value;
    else if (name === 'v1' && hexSha256Pattern.test(value)) signatures.push(Buffer.from(value, 'hex'));
  }
  if (timestamp === undefined || !unixSecondsPattern.test(timestamp) || signatures.length === 0) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return false;
  const expected = mac(secret, timestamp, body);
  // Every candidate is compared, so the time taken does not tell which one matched.
  return signatures.reduce((matched, signature) => timingSafeEqual(signature, expected) || matched, false);
}
