/** Validation errors that name the file, the document, the field path and the reason (SPEC §2). */
import type { z } from 'zod';

export interface PolicyError {
  file: string;
  /** 1-based index of the YAML document within the file; 0 when the error concerns the whole file. */
  doc: number;
  /** Field path such as `spec.allow[0].hosts[1]`; empty for a whole document. */
  path: string;
  message: string;
}

export function formatPolicyError(e: PolicyError): string {
  const where = [e.file, e.doc > 0 ? `doc ${e.doc}` : '', e.path].filter((s) => s !== '');
  return `${where.join(': ')}: ${e.message}`;
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

const article = (what: string): string => (/^[aeiou]/.test(what) ? `an ${what}` : `a ${what}`);

/** Turns zod's issues into our one-line errors; unknown keys name the key in the path. */
export function fromZodIssues(file: string, doc: number, issues: ReadonlyArray<z.core.$ZodIssue>): PolicyError[] {
  const out: PolicyError[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ file, doc, path: formatPath([...issue.path, key]), message: 'unknown field' });
      }
      continue;
    }
    let message = issue.message;
    if (issue.code === 'invalid_type') message = /received undefined$/.test(issue.message) ? 'is required' : `must be ${article(issue.expected)}`;
    out.push({ file, doc, path: formatPath(issue.path), message });
  }
  return out;
}
