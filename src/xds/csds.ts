/**
 * Client Status Discovery Service (envoy.service.status.v3): what each node has been sent and
 * whether it accepted it, per resource. Envoy does not serve CSDS itself; the control plane must
 * (research/xds-protocol-notes.md). Statuses, per resource of the node's current configuration:
 * - NOT_SENT: its type has never been pushed to the node;
 * - SYNCED: the node ACKed the version last sent;
 * - ERROR: the node NACKed the version last sent (error_state carries Envoy's message);
 * - STALE: sent, not acknowledged yet.
 */
import type * as grpc from '@grpc/grpc-js';
import type { NodeRegistry, NodeStatus, TypeStatus } from './node-registry';
import type { Snapshot } from '../cache/snapshot';
import { serviceDefinition } from './grpc-codec';
import { PUSH_ORDER } from './type-urls';
import type { PeerCertificate } from 'node:tls';
import { GRPC_STATUS } from './messages';
import { authenticatePeer, type TrustAnchor } from '../identity/peer-auth';

interface StringMatcherIn {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
}

interface ClientStatusRequestIn {
  nodeMatchers?: Array<{ nodeId?: StringMatcherIn | null }>;
  excludeResourceContents?: boolean;
}

function matches(m: StringMatcherIn | null | undefined, id: string): boolean {
  if (!m) return true;
  if (m.exact) return id === m.exact;
  if (m.prefix) return id.startsWith(m.prefix);
  if (m.suffix) return id.endsWith(m.suffix);
  if (m.contains) return id.includes(m.contains);
  return true;
}

function statusOf(t: TypeStatus | undefined): { configStatus: string; clientStatus: string } {
  if (!t?.sentVersion) return { configStatus: 'NOT_SENT', clientStatus: 'UNKNOWN' };
  if (t.lastNack && t.lastNack.version === t.sentVersion) return { configStatus: 'ERROR', clientStatus: 'NACKED' };
  if (t.ackedVersion === t.sentVersion) return { configStatus: 'SYNCED', clientStatus: 'ACKED' };
  return { configStatus: 'STALE', clientStatus: 'REQUESTED' };
}

function timestamp(iso: string): { seconds: number; nanos: number } {
  const ms = Date.parse(iso);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

/** One ClientConfig per node matching the request (all nodes when it names no matcher). */
export function clientStatus(registry: NodeRegistry, req: ClientStatusRequestIn, only?: { tenant: string; agent: string }): Record<string, unknown> {
  const matchers = req.nodeMatchers ?? [];
  const config = registry
    .entries()
    .filter((e) => !only || (e.status.tenant === only.tenant && e.status.agent === only.agent))
    .filter((e) => matchers.length === 0 || matchers.some((m) => matches(m.nodeId, e.status.node)))
    .sort((a, b) => a.status.node.localeCompare(b.status.node))
    .map((e) => ({ node: { id: e.status.node }, genericXdsConfigs: xdsConfigs(e.status, e.snapshot, !!req.excludeResourceContents) }));
  return { config };
}

function xdsConfigs(status: NodeStatus, snapshot: Snapshot | undefined, exclude: boolean): unknown[] {
  if (!snapshot) return [];
  const out: unknown[] = [];
  for (const type of PUSH_ORDER) {
    const t = status.resources[type];
    const s = statusOf(t);
    for (const res of snapshot.resources.get(type)?.values() ?? []) {
      out.push({
        typeUrl: type,
        name: res.name,
        versionInfo: t?.ackedVersion ?? '',
        ...(exclude ? {} : { xdsConfig: { typeUrl: type, value: res.value } }),
        ...s,
        ...(s.configStatus === 'ERROR' && t?.lastNack
          ? { errorState: { details: t.lastNack.message, versionInfo: t.lastNack.version, lastUpdateAttempt: timestamp(t.lastNack.at) } }
          : {}),
      });
    }
  }
  return out;
}

/**
 * With mTLS, a caller sees only the nodes of its own tenant and agent: CSDS carries whole
 * configurations, and one tenant's allowlist is none of another's business (SPEC §6.7).
 */
function scope(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null }, trust: TrustAnchor | undefined): { ok: true; only?: { tenant: string; agent: string } } | { ok: false; message: string } {
  if (!trust) return { ok: true };
  const auth = authenticatePeer(call.getAuthContext()?.sslPeerCertificate, trust);
  return auth.ok ? { ok: true, only: auth.identity } : { ok: false, message: auth.reason };
}

export function csdsService(registry: NodeRegistry, trust?: TrustAnchor): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
  return {
    definition: serviceDefinition('envoy.service.status.v3.ClientStatusDiscoveryService'),
    implementation: {
      FetchClientStatus: (call: grpc.ServerUnaryCall<ClientStatusRequestIn, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const s = scope(call, trust);
        if (!s.ok) return cb({ code: GRPC_STATUS.UNAUTHENTICATED, details: s.message } as grpc.ServiceError);
        cb(null, clientStatus(registry, call.request, s.only));
      },
      StreamClientStatus: (call: grpc.ServerDuplexStream<ClientStatusRequestIn, unknown>) => {
        const s = scope(call, trust);
        if (!s.ok) return void call.emit('error', { code: GRPC_STATUS.UNAUTHENTICATED, details: s.message });
        call.on('data', (req: ClientStatusRequestIn) => call.write(clientStatus(registry, req, s.only)));
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    },
  };
}
