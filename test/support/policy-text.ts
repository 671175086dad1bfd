/**
 * Policy text in tests: written from specs (generated policies), and read back into a policy set
 * or an agent's IR the way the control plane reads a file.
 */
import { stringify } from 'yaml';
import { parsePolicyText } from '../../src/policy/parse';
import type { PolicySet } from '../../src/policy/documents';
import { buildAgentIr } from '../../src/ir/build-ir';
import type { AgentIr } from '../../src/ir/agent-ir';

/** One EgressPolicy document: its name, tenant, agents and rules as they stand in the YAML. */
export interface PolicyDocSpec {
  name: string;
  tenant: string;
  agents: string[];
  allow: object[];
  deny: object[];
}

/** The YAML of EgressPolicy documents, one after another in one file. */
export function policyDocsYaml(docs: PolicyDocSpec[]): string {
  return docs
    .map((d) =>
      stringify({
        apiVersion: 'exitgate.dev/v1',
        kind: 'EgressPolicy',
        metadata: { name: d.name, tenant: d.tenant },
        spec: { agents: d.agents, allow: d.allow, deny: d.deny },
      }),
    )
    .join('---\n');
}

/** The policies and credentials of one policy file's text; any parse error fails the test. */
export function policySetOf(text: string, file = 'p.yaml'): PolicySet {
  const parsed = parsePolicyText(file, text);
  expect(parsed.errors).toEqual([]);
  return { policies: parsed.policies, credentials: parsed.credentials };
}

/** The IR of one agent under one policy file's text (`exitgate check`'s view); any parse error fails the test. */
export function agentIrOf(text: string, opts: { tenant?: string; agent?: string; file?: string } = {}): AgentIr {
  return buildAgentIr(policySetOf(text, opts.file), opts.tenant ?? 'acme', opts.agent ?? 'coder');
}
