/** Node ids `<tenant>/<agent>/<instance>` (SPEC §1). */
export interface NodeId {
  tenant: string;
  agent: string;
  instance: string;
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const INSTANCE = /^[A-Za-z0-9._-]{1,128}$/;

export function parseNodeId(text: string): { ok: true; value: NodeId } | { ok: false; reason: string } {
  const parts = text.split('/');
  if (parts.length !== 3) return { ok: false, reason: `node id ${JSON.stringify(text)} must be <tenant>/<agent>/<instance>` };
  const [tenant, agent, instance] = parts as [string, string, string];
  if (!DNS_LABEL.test(tenant)) return { ok: false, reason: `node id ${JSON.stringify(text)}: tenant "${tenant}" is not a DNS label` };
  if (!DNS_LABEL.test(agent)) return { ok: false, reason: `node id ${JSON.stringify(text)}: agent "${agent}" is not a DNS label` };
  if (!INSTANCE.test(instance)) return { ok: false, reason: `node id ${JSON.stringify(text)}: instance "${instance}" must match [A-Za-z0-9._-]{1,128}` };
  return { ok: true, value: { tenant, agent, instance } };
}

export const formatNodeId = (n: NodeId): string => `${n.tenant}/${n.agent}/${n.instance}`;
