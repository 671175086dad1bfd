/**
 * Admin API authentication and authorization (SPEC §4 "Auth").
 *
 * - `Authorization: Bearer <token>`; an admin token grants everything, a tenant token only its
 *   tenant's routes (403 elsewhere); no or an unknown token is 401 with `WWW-Authenticate: Bearer`.
 * - Comparison is constant-time and length-blind: the presented token and every configured token
 *   are compared as SHA-256 digests (always 32 bytes) with `crypto.timingSafeEqual`, against every
 *   configured token with no early exit, so neither the position nor the length of a near-miss leaks.
 * - Only digests are kept; the token strings are dropped after construction, so nothing here can
 *   log one.
 */
import * as crypto from 'node:crypto';
import { hasTokens, type TokenConfig } from '../config/tokens';

export type Principal = { kind: 'admin' } | { kind: 'tenant'; tenant: string };

/** What a route needs: nothing (health), the admin, or the admin or the named tenant; `any` = any valid token. */
export type Scope = { kind: 'public' } | { kind: 'admin' } | { kind: 'tenant'; tenant: string } | { kind: 'any' };

export type AuthnResult =
  | { ok: true; principal: Principal }
  | { ok: false; reason: 'missing' | 'malformed' | 'invalid' };

const digest = (token: string): Buffer => crypto.createHash('sha256').update(token, 'utf8').digest();

/**
 * Compares two secrets in time independent of their content and of their lengths: both are
 * hashed first, so `timingSafeEqual` always sees two 32-byte buffers.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  return crypto.timingSafeEqual(digest(a), digest(b));
}

export class TokenAuthenticator {
  private readonly entries: Array<{ digest: Buffer; principal: Principal }> = [];

  constructor(tokens: TokenConfig) {
    for (const t of tokens.admin) this.entries.push({ digest: digest(t), principal: { kind: 'admin' } });
    for (const [tenant, list] of Object.entries(tokens.tenants)) {
      for (const t of list) this.entries.push({ digest: digest(t), principal: { kind: 'tenant', tenant } });
    }
  }

  /** True when tokens are configured: every route but health then needs one. */
  get enabled(): boolean {
    return this.entries.length > 0;
  }

  static from(tokens: TokenConfig | undefined): TokenAuthenticator {
    return new TokenAuthenticator(tokens && hasTokens(tokens) ? tokens : { admin: [], tenants: {} });
  }

  /** Checks an `Authorization` header value. */
  authenticate(header: string | undefined): AuthnResult {
    if (header === undefined || header.trim() === '') return { ok: false, reason: 'missing' };
    const m = /^Bearer +([^\s]+) *$/i.exec(header);
    if (!m) return { ok: false, reason: 'malformed' };
    const presented = digest(m[1]!);
    let found: Principal | undefined;
    for (const e of this.entries) {
      // No early exit: every configured token is compared, whatever matched before.
      if (crypto.timingSafeEqual(presented, e.digest) && found === undefined) found = e.principal;
    }
    return found ? { ok: true, principal: found } : { ok: false, reason: 'invalid' };
  }
}

/** Whether a principal may use a route of the given scope; the reason when not. */
export function authorize(principal: Principal, scope: Scope): { ok: true } | { ok: false; reason: string } {
  if (scope.kind === 'public' || scope.kind === 'any' || principal.kind === 'admin') return { ok: true };
  if (scope.kind === 'admin') return { ok: false, reason: 'this route needs an admin token' };
  if (principal.tenant === scope.tenant) return { ok: true };
  return { ok: false, reason: `this token is not allowed to access tenant ${JSON.stringify(scope.tenant)}` };
}

/** A short, token-free description of a principal for logs. */
export const principalLabel = (p: Principal | undefined): string => (p === undefined ? 'anonymous' : p.kind === 'admin' ? 'admin' : `tenant:${p.tenant}`);
