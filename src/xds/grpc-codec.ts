/**
 * grpc-js service definitions built from Envoy's loaded API, with protobufjs codecs: requests are
 * decoded once; responses carry already-encoded Any bytes, so pushing a resource to many nodes
 * never re-encodes it.
 */
import type * as grpc from '@grpc/grpc-js';
import protojson from 'protobufjs/ext/protojson';
import { lookupType } from './proto';
import type { DiscoveryRequestIn, DiscoveryResponseOut } from './messages';

const requestType = () => lookupType('envoy.service.discovery.v3.DiscoveryRequest');
const responseType = () => lookupType('envoy.service.discovery.v3.DiscoveryResponse');
const nodeType = () => lookupType('envoy.config.core.v3.Node');

interface DecodedRequest {
  versionInfo?: string;
  node?: unknown;
  resourceNames?: string[];
  typeUrl?: string;
  responseNonce?: string;
  errorDetail?: { code?: number; message?: string };
}

export function decodeDiscoveryRequest(buf: Buffer): DiscoveryRequestIn {
  const msg = requestType().decode(buf) as unknown as DecodedRequest;
  const out: DiscoveryRequestIn = {
    versionInfo: msg.versionInfo ?? '',
    resourceNames: msg.resourceNames ?? [],
    typeUrl: msg.typeUrl ?? '',
    responseNonce: msg.responseNonce ?? '',
  };
  if (msg.node) {
    const node = protojson.toJson(nodeType(), msg.node as never) as { id?: string; metadata?: Record<string, unknown> };
    out.node = { id: node.id ?? '', ...(node.metadata ? { metadata: node.metadata } : {}) };
  }
  if (msg.errorDetail) out.errorDetail = { code: msg.errorDetail.code ?? 0, message: msg.errorDetail.message ?? '' };
  return out;
}

export function encodeDiscoveryResponse(res: DiscoveryResponseOut): Buffer {
  return Buffer.from(responseType().encode(res as never).finish());
}

/** Encodes a request: used by the test client and the load client, not by the server. */
export function encodeDiscoveryRequest(req: Partial<DiscoveryRequestIn> & { node?: { id: string; metadata?: Record<string, unknown> } }): Buffer {
  const obj: Record<string, unknown> = { ...req };
  if (req.node) obj.node = protojson.fromJson(nodeType(), req.node as never);
  return Buffer.from(requestType().encode(obj as never).finish());
}

export function decodeDiscoveryResponse(buf: Buffer): DiscoveryResponseOut {
  const msg = responseType().decode(buf) as unknown as Partial<DiscoveryResponseOut>;
  return { versionInfo: msg.versionInfo ?? '', typeUrl: msg.typeUrl ?? '', nonce: msg.nonce ?? '', resources: msg.resources ?? [] };
}

export const ADS_SERVICE: grpc.ServiceDefinition = {
  StreamAggregatedResources: {
    path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
    requestStream: true,
    responseStream: true,
    requestSerialize: (r: Parameters<typeof encodeDiscoveryRequest>[0]) => encodeDiscoveryRequest(r),
    requestDeserialize: decodeDiscoveryRequest,
    responseSerialize: encodeDiscoveryResponse,
    responseDeserialize: decodeDiscoveryResponse,
  },
};
