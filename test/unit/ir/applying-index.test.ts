/** indexApplyingPolicies answers exactly what applyingPolicies answers, for every (tenant, agent). */
import fc from 'fast-check';
import { applyingPolicies, indexApplyingPolicies } from '../../../src/ir/build-ir';
import type { PolicySet } from '../../../src/policy/documents';
import type { EgressPolicy } from '../../../src/policy/schema';

const TENANTS = ['acme', 'beta'];
const AGENTS = ['a', 'b', 'c', '*'];

const policy = (tenant: string, name: string, agents: string[]): EgressPolicy =>
  ({ apiVersion: 'exitgate.dev/v1', kind: 'EgressPolicy', metadata: { tenant, name }, spec: { agents, mode: 'enforce', allow: [], deny: [] } }) as unknown as EgressPolicy;

describe('indexApplyingPolicies', () => {
  it('matches applyingPolicies: same objects, same order (duplicate names keep set order)', () => {
    const arbPolicy = fc.record({
      tenant: fc.constantFrom(...TENANTS),
      // Few names, so that equal names (an invalid set, but a defined order) occur.
      name: fc.constantFrom('p1', 'p2', 'p3', 'P2', 'p10'),
      agents: fc.array(fc.constantFrom(...AGENTS), { minLength: 1, maxLength: 3 }),
    });
    fc.assert(
      fc.property(fc.array(arbPolicy, { maxLength: 12 }), (specs) => {
        const set: PolicySet = { policies: specs.map((s, i) => ({ policy: policy(s.tenant, s.name, s.agents), source: { file: `f${i}`, doc: 1 } })), credentials: [] };
        const index = indexApplyingPolicies(set);
        for (const tenant of [...TENANTS, 'none']) {
          for (const agent of ['a', 'b', 'c', 'd']) {
            const got = index.applying(tenant, agent);
            const want = applyingPolicies(set, tenant, agent);
            if (got.length !== want.length || got.some((p, i) => p !== want[i])) return false;
          }
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
