// API keys kept in the embedded engine's SQLite file: created once, stored hashed, verified in constant time.

import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import { tenantIdPattern } from '../../core/index.js';
import type { ApiKeyVerifier, Principal, Scope } from '../http/auth.js';
import { scopes as knownScopes } from '../http/auth.js';

export interface ApiKeyInfo {
  id: string;
  tenant: string | null;
  scopes: Scope[];
  createdMs: number;
  revokedMs: number | null;
}

export interface CreatedKey {
  id: string;
  /** `sk_<id>_<secret>`: shown once, never stored. */
  key: string;
}

/** A key that cannot be created as asked (a malformed tenant, no or unknown scopes). */
export class KeyRequestError extends Error {
  readonly code = 'KEY_REQUEST_INVALID';
}

interface KeyRow {
  id: string;
  tenant: string | null;
  scopes: string;
  hash: string;
  created_ms: number;
  revoked_ms: number | null;
}

const idBytes = 8;
const secretBytes = 32;
/** `sk_`, 16 hex digits of id, `_`, 43 base64url characters of secret. */
const keyShape = /^sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/**
 * SHA-256, not a slow password hash: the secret is 256 random bits, so nobody can guess it from its hash
 * however fast the hash is, and a slow hash would only add its cost to every request.
 */
function hashOf(key: string): string {
  return hash('sha256', key, 'hex');
}

/** How long a key read from the file is trusted before it is read again: a revocation from another process (the CLI) takes effect within this. */
export const keyRecheckMs = 1000;

/**
 * A key as verification needs it: its principal, its stored hash as bytes, and when it was read; and, once a
 * request presented it, the key itself, which later requests are compared with in constant time instead of
 * hashing each one (the hash was the largest single cost of authenticating a request).
 */
interface KnownKey {
  principal: Principal;
  hash: Buffer;
  readAtMs: number;
  verified?: Buffer;
}

function parseScopes(text: string): Scope[] {
  return text.split(',').filter((scope): scope is Scope => (knownScopes as readonly string[]).includes(scope));
}

export class ApiKeyStore implements ApiKeyVerifier {
  private readonly statements: Record<'insert' | 'byId' | 'all' | 'revoke', Statement>;
  /**
   * Keys verified recently, by id: most requests then cost a map lookup instead of a query. Only live keys
   * are kept, so a key created by the CLI works at once; a revocation here drops it at once.
   */
  private readonly known = new Map<string, KnownKey>();

  constructor(db: Database, private readonly clock: () => number = Date.now) {
    this.statements = {
      insert: db.prepare('INSERT INTO api_keys (id, tenant, scopes, hash, created_ms, revoked_ms) VALUES (?, ?, ?, ?, ?, NULL)'),
      byId: db.prepare('SELECT id, tenant, scopes, hash, created_ms, revoked_ms FROM api_keys WHERE id = ?'),
      all: db.prepare('SELECT id, tenant, scopes, hash, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id'),
      revoke: db.prepare('UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL'),
    };
  }

  /** Creates a key for one tenant, or for every tenant with `tenant: null`. */
  create(options: { tenant: string | null; scopes: readonly Scope[] }): CreatedKey {
    if (options.tenant !== null && !new RegExp(tenantIdPattern).test(options.tenant)) {
      throw new KeyRequestError(`invalid tenant id ${JSON.stringify(options.tenant)}: lower-case letters, digits, _ and -`);
    }
    const granted = [...new Set(options.scopes)];
    if (granted.length === 0 || granted.some((scope) => !knownScopes.includes(scope))) {
      throw new KeyRequestError(`scopes must be a non-empty list of ${knownScopes.join(', ')}`);
    }
    const id = randomBytes(idBytes).toString('hex');
    const key = `sk_${id}_${randomBytes(secretBytes).toString('base64url')}`;
    this.statements.insert.run(id, options.tenant, granted.join(','), hashOf(key), this.clock());
    return { id, key };
  }

  /**
   * The key's principal, or undefined. Every key of the shape has the same length, so a key already verified is
   * compared byte for byte in constant time; any other is hashed and compared with the stored hash.
   */
  verify(key: string): Principal | undefined {
    const match = keyShape.exec(key);
    if (match === null) return undefined;
    const id = match[1] as string;
    const known = this.knownKey(id);
    if (known === undefined) return undefined;
    const presented = Buffer.from(key, 'latin1');
    if (known.verified !== undefined) return timingSafeEqual(presented, known.verified) ? known.principal : undefined;
    if (!timingSafeEqual(hash('sha256', presented, 'buffer'), known.hash)) return undefined;
    known.verified = presented;
    return known.principal;
  }

  private knownKey(id: string): KnownKey | undefined {
    const nowMs = this.clock();
    const cached = this.known.get(id);
    if (cached !== undefined && nowMs - cached.readAtMs < keyRecheckMs && nowMs >= cached.readAtMs) return cached;
    const row = this.statements.byId.get(id) as KeyRow | undefined;
    if (row === undefined || row.revoked_ms !== null) {
      this.known.delete(id);
      return undefined;
    }
    const known: KnownKey = { principal: { keyId: row.id, tenant: row.tenant, scopes: parseScopes(row.scopes) }, hash: Buffer.from(row.hash, 'hex'), readAtMs: nowMs };
    // Read again a second later: the key verified under the same stored hash stays verified.
    if (cached?.verified !== undefined && cached.hash.equals(known.hash)) known.verified = cached.verified;
    this.known.set(id, known);
    return known;
  }

  list(): ApiKeyInfo[] {
    return (this.statements.all.all() as KeyRow[]).map((row) => ({
      id: row.id, tenant: row.tenant, scopes: parseScopes(row.scopes), createdMs: row.created_ms, revokedMs: row.revoked_ms,
    }));
  }

  /** Revokes a key; false when no key has that id. Revoking twice keeps the first time. */
  revoke(id: string): boolean {
    this.statements.revoke.run(this.clock(), id);
    this.known.delete(id);
    return this.statements.byId.get(id) !== undefined;
  }
}
