/**
 * Expected failures are values, not exceptions (ARCHITECTURE.md principle 8): a caller
 * must look at `ok` before it can reach the value, so an invalid policy or snapshot can
 * never be published by accident.
 */
export type Result<T, E = string> = { ok: true; value: T } | { ok: false; errors: E[] };

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
export const fail = <E = string>(...errors: E[]): { ok: false; errors: E[] } => ({ ok: false, errors });
