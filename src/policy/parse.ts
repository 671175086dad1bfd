/**
 * Text -> validated documents. Pure: the caller reads files; this takes their text, so the
 * same function serves the file store, the admin API and `exitgate validate`.
 */
import { parseAllDocuments } from 'yaml';
import { credentialSchema, egressPolicySchema } from './schema';
import { fromZodIssues, type PolicyError } from './errors';
import type { LoadedCredential, LoadedPolicy, PolicySet } from './documents';

export interface ParsedFile {
  policies: LoadedPolicy[];
  credentials: LoadedCredential[];
  errors: PolicyError[];
}

const KINDS = ['EgressPolicy', 'Credential'];

/** Parses one file's text (YAML, possibly several documents, or JSON). */
export function parsePolicyText(file: string, text: string): ParsedFile {
  const out: ParsedFile = { policies: [], credentials: [], errors: [] };
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  let index = 0;
  for (const doc of list) {
    index += 1;
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        out.errors.push({ file, doc: index, path: '', message: `invalid YAML: ${err.message.split('\n')[0]}` });
      }
      continue;
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue; // an empty document (e.g. a trailing ---)
    if (typeof value !== 'object' || Array.isArray(value)) {
      out.errors.push({ file, doc: index, path: '', message: 'a policy document must be a mapping' });
      continue;
    }
    const kind = (value as { kind?: unknown }).kind;
    if (kind === 'EgressPolicy') {
      const parsed = egressPolicySchema.safeParse(value);
      if (parsed.success) out.policies.push({ policy: parsed.data, source: { file, doc: index } });
      else out.errors.push(...fromZodIssues(file, index, parsed.error.issues));
    } else if (kind === 'Credential') {
      const parsed = credentialSchema.safeParse(value);
      if (parsed.success) out.credentials.push({ credential: parsed.data, source: { file, doc: index } });
      else out.errors.push(...fromZodIssues(file, index, parsed.error.issues));
    } else {
      const message = kind === undefined ? 'is required' : `${JSON.stringify(kind)} is not a known kind (${KINDS.join(', ')})`;
      out.errors.push({ file, doc: index, path: 'kind', message });
    }
  }
  return out;
}

/**
 * Checks that hold across documents: policy names unique within a tenant, rule names unique
 * within a policy (a rule name appears in every decision, so it must identify one rule).
 */
export function crossCheck(set: PolicySet): PolicyError[] {
  const errors: PolicyError[] = [];
  const seen = new Map<string, LoadedPolicy>();
  for (const lp of set.policies) {
    const { tenant, name } = lp.policy.metadata;
    const key = `${tenant}/${name}`;
    const first = seen.get(key);
    if (first) {
      errors.push({
        ...lp.source,
        path: 'metadata.name',
        message: `policy "${name}" of tenant "${tenant}" is already defined in ${first.source.file} doc ${first.source.doc}`,
      });
    } else seen.set(key, lp);
    const ruleNames = new Map<string, string>();
    const rules = [
      ...lp.policy.spec.allow.map((r, i) => ({ name: r.name, path: `spec.allow[${i}].name` })),
      ...lp.policy.spec.deny.map((r, i) => ({ name: r.name, path: `spec.deny[${i}].name` })),
    ];
    for (const r of rules) {
      const earlier = ruleNames.get(r.name);
      if (earlier) errors.push({ ...lp.source, path: r.path, message: `rule name "${r.name}" is already used by ${earlier}` });
      else ruleNames.set(r.name, r.path);
    }
  }
  // A rule's credential must be a Credential of the same tenant (SPEC §2).
  const credentialNames = new Set(set.credentials.map((c) => `${c.credential.metadata.tenant}/${c.credential.metadata.name}`));
  for (const lp of set.policies) {
    lp.policy.spec.allow.forEach((r, i) => {
      if (r.credential && !credentialNames.has(`${lp.policy.metadata.tenant}/${r.credential}`)) {
        errors.push({ ...lp.source, path: `spec.allow[${i}].credential`, message: `"${r.credential}" is not a Credential of tenant "${lp.policy.metadata.tenant}"` });
      }
    });
  }
  const creds = new Map<string, LoadedCredential>();
  for (const lc of set.credentials) {
    const key = `${lc.credential.metadata.tenant}/${lc.credential.metadata.name}`;
    const first = creds.get(key);
    if (first) {
      errors.push({ ...lc.source, path: 'metadata.name', message: `credential "${key}" is already defined in ${first.source.file} doc ${first.source.doc}` });
    } else creds.set(key, lc);
  }
  return errors;
}
