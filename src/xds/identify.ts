/**
 * Who is on the other end of a stream: the node id (`<tenant>/<agent>/<instance>`, SPEC §1) and
 * the facts its bootstrap declares. Shared by the SotW and Delta streams.
 */
import { parseNodeId, formatNodeId, type NodeId } from '../identity/node-id';
import type { NodeDescriptor } from '../cache/snapshot-cache';
import { nodeFactsFromMetadata } from './node-facts';
import { GRPC_STATUS } from './messages';

export interface IdentifiedNode {
  id: NodeId;
  name: string;
  descriptor: NodeDescriptor;
}

/** Decides whether the authenticated peer may act as this node (undefined: no mTLS, anyone may). */
export type NodeAuthorizer = (id: NodeId) => { ok: true } | { ok: false; reason: string };

export function identifyNode(
  node: { id: string; metadata?: Record<string, unknown> } | undefined,
  authorize?: NodeAuthorizer,
): { ok: true; value: IdentifiedNode } | { ok: false; code: number; message: string } {
  if (!node?.id) return { ok: false, code: GRPC_STATUS.INVALID_ARGUMENT, message: 'the first request must carry node.id' };
  const id = parseNodeId(node.id);
  if (!id.ok) return { ok: false, code: GRPC_STATUS.INVALID_ARGUMENT, message: id.reason };
  if (authorize) {
    const allowed = authorize(id.value);
    if (!allowed.ok) return { ok: false, code: GRPC_STATUS.PERMISSION_DENIED, message: allowed.reason };
  }
  const facts = nodeFactsFromMetadata(node.metadata);
  if (!facts.ok) return { ok: false, code: GRPC_STATUS.INVALID_ARGUMENT, message: `${node.id}: ${facts.reason}` };
  return { ok: true, value: { id: id.value, name: formatNodeId(id.value), descriptor: { tenant: id.value.tenant, agent: id.value.agent, ...facts.value } } };
}
