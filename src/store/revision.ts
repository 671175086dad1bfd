/**
 * Revisions of a stored policy, for `ETag` / `If-Match` (SPEC §4). The revision is a strong
 * content hash of the validated policy (defaults filled in, keys sorted), so it is the same
 * whether the policy came from the admin API or a hand-written file, and unchanged by comments
 * or formatting that do not change the policy.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { EgressPolicy } from '../policy/schema';

/** JSON with object keys sorted at every level: one text per value. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/** The quoted strong entity tag of a policy: `"sha256-<base64url>"`. */
export function policyEtag(policy: EgressPolicy): string {
  return `"sha256-${createHash('sha256').update(canonicalJson(policy)).digest('base64url')}"`;
}

/** The file the admin API writes for a policy: a comment saying who manages it, then the policy as YAML. */
export function renderPolicyFile(policy: EgressPolicy): string {
  const { tenant, name } = policy.metadata;
  return `# Written by the exitgate admin API (PUT /v1/tenants/${tenant}/policies/${name}).\n# The API replaces this file on its next write of this policy.\n${stringify(policy, { lineWidth: 0 })}`;
}
