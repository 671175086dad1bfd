/**
 * A PUT body -> one validated EgressPolicy. The body is YAML or JSON and goes through the same
 * parser as policy files (parsePolicyText), named as the file it will be stored in, so its errors
 * are the very lines `exitgate validate` and the server log would print for that file:
 * `policies/acme/web.yaml: doc 1: spec.allow[0].hosts[0]: "*.*.x.test" is not a valid host pattern`.
 */
import { parsePolicyText } from '../policy/parse';
import type { PolicyError } from '../policy/errors';
import type { EgressPolicy } from '../policy/schema';
import type { Result } from '../util/result';

export type BodyFormat = 'json' | 'yaml';

/**
 * Validates a body for `PUT /v1/tenants/:tenant/policies/:name`: exactly one EgressPolicy whose
 * metadata names the URL's tenant and policy (a tenant token must not write another tenant's policy
 * by naming it in the body).
 */
export function parsePolicyBody(file: string, text: string, format: BodyFormat, tenant: string, name: string): Result<EgressPolicy, PolicyError> {
  if (format === 'json') {
    try {
      JSON.parse(text);
    } catch (err) {
      return { ok: false, errors: [{ file, doc: 1, path: '', message: `invalid JSON: ${(err as Error).message}` }] };
    }
  }
  const parsed = parsePolicyText(file, text);
  if (parsed.errors.length > 0) return { ok: false, errors: parsed.errors };
  const errors: PolicyError[] = [];
  for (const c of parsed.credentials) {
    errors.push({ ...c.source, path: 'kind', message: 'this route stores EgressPolicy documents; a Credential is not accepted here' });
  }
  if (parsed.policies.length === 0 && errors.length === 0) errors.push({ file, doc: 0, path: '', message: 'the body holds no EgressPolicy document' });
  for (const extra of parsed.policies.slice(1)) {
    errors.push({ ...extra.source, path: '', message: 'the body must hold exactly one EgressPolicy document' });
  }
  const first = parsed.policies[0];
  if (first) {
    const { metadata } = first.policy;
    if (metadata.tenant !== tenant) {
      errors.push({ ...first.source, path: 'metadata.tenant', message: `${JSON.stringify(metadata.tenant)} does not match the tenant in the URL (${JSON.stringify(tenant)})` });
    }
    if (metadata.name !== name) {
      errors.push({ ...first.source, path: 'metadata.name', message: `${JSON.stringify(metadata.name)} does not match the policy name in the URL (${JSON.stringify(name)})` });
    }
  }
  return errors.length > 0 || !first ? { ok: false, errors } : { ok: true, value: first.policy };
}

/** The body format for a Content-Type: JSON, YAML, or unsupported (415). No type: YAML, which also reads JSON. */
export function bodyFormat(media: string | undefined): BodyFormat | undefined {
  if (media === undefined) return 'yaml';
  if (media === 'application/json' || media.endsWith('+json')) return 'json';
  if (['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml', 'text/plain', 'application/octet-stream'].includes(media) || media.endsWith('+yaml')) return 'yaml';
  return undefined;
}
