/**
 * Workload identities as SPIFFE ids in the certificate's URI SAN:
 * `spiffe://<trust-domain>/tenant/<tenant>/agent/<agent>` (SPEC §1, issue: identity and tenants).
 * The instance is not part of the identity: every instance of an agent may hold the same kind of
 * certificate, and none may claim another agent or tenant.
 */
const DNS_LABEL = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
const TRUST_DOMAIN = /^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$/;
const AGENT_ID = new RegExp(`^spiffe://([^/]+)/tenant/(${DNS_LABEL})/agent/(${DNS_LABEL})$`);

export interface WorkloadIdentity {
  trustDomain: string;
  tenant: string;
  agent: string;
}

export const DEFAULT_TRUST_DOMAIN = 'exitgate.local';

export function isTrustDomain(td: string): boolean {
  return TRUST_DOMAIN.test(td);
}

export const agentSpiffeId = (trustDomain: string, tenant: string, agent: string): string => `spiffe://${trustDomain}/tenant/${tenant}/agent/${agent}`;

export function parseAgentSpiffeId(uri: string): WorkloadIdentity | null {
  const m = AGENT_ID.exec(uri);
  if (!m) return null;
  return { trustDomain: m[1]!, tenant: m[2]!, agent: m[4]! };
}

/** URI SANs from Node's `subjectaltname` text ("DNS:a, URI:spiffe://..., IP Address:..."). */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(/,\s*/)
    .filter((part) => part.startsWith('URI:'))
    .map((part) => part.slice(4));
}
