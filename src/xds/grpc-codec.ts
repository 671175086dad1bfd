/**
 * grpc-js service definitions built from Envoy's loaded API, with protobufjs codecs: requests are
 * decoded once; responses carry already-encoded Any bytes, so pushing a resource to many nodes
 * never re-encodes it.
 */
import type * as grpc from '@grpc/grpc-js';
import protojson from 'protobufjs/ext/protojson';
import { envoyApi, lookupType } from './proto';
import type { DeltaRequestIn, DeltaResponseOut, DiscoveryRequestIn, DiscoveryResponseOut } from './messages';

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

/** The fields SotW and Delta requests share: node (first request only) and a NACK's error. */
function withNodeAndError<T extends { node?: DiscoveryRequestIn['node']; errorDetail?: DiscoveryRequestIn['errorDetail'] }>(
  out: T,
  msg: { node?: unknown; errorDetail?: { code?: number; message?: string } },
): T {
  if (msg.node) {
    const node = protojson.toJson(nodeType(), msg.node as never) as { id?: string; metadata?: Record<string, unknown> };
    out.node = { id: node.id ?? '', ...(node.metadata ? { metadata: node.metadata } : {}) };
  }
  if (msg.errorDetail) out.errorDetail = { code: msg.errorDetail.code ?? 0, message: msg.errorDetail.message ?? '' };
  return out;
}

export function decodeDiscoveryRequest(buf: Buffer): DiscoveryRequestIn {
  const msg = requestType().decode(buf) as unknown as DecodedRequest;
  const out: DiscoveryRequestIn = {
    versionInfo: msg.versionInfo ?? '',
    resourceNames: msg.resourceNames ?? [],
    typeUrl: msg.typeUrl ?? '',
    responseNonce: msg.responseNonce ?? '',
  };
  return withNodeAndError(out, msg);
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

const deltaRequestType = () => lookupType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
const deltaResponseType = () => lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse');

interface DecodedDeltaRequest {
  node?: unknown;
  typeUrl?: string;
  resourceNamesSubscribe?: string[];
  resourceNamesUnsubscribe?: string[];
  initialResourceVersions?: Record<string, string>;
  responseNonce?: string;
  errorDetail?: { code?: number; message?: string };
}

export function decodeDeltaRequest(buf: Buffer): DeltaRequestIn {
  const msg = deltaRequestType().decode(buf) as unknown as DecodedDeltaRequest;
  const out: DeltaRequestIn = {
    typeUrl: msg.typeUrl ?? '',
    resourceNamesSubscribe: msg.resourceNamesSubscribe ?? [],
    resourceNamesUnsubscribe: msg.resourceNamesUnsubscribe ?? [],
    initialResourceVersions: { ...(msg.initialResourceVersions ?? {}) },
    responseNonce: msg.responseNonce ?? '',
  };
  return withNodeAndError(out, msg);
}

export function encodeDeltaResponse(res: DeltaResponseOut): Buffer {
  return Buffer.from(deltaResponseType().encode(res as never).finish());
}

export function encodeDeltaRequest(req: Partial<DeltaRequestIn>): Buffer {
  const obj: Record<string, unknown> = { ...req };
  if (req.node) obj.node = protojson.fromJson(nodeType(), req.node as never);
  return Buffer.from(deltaRequestType().encode(obj as never).finish());
}

export function decodeDeltaResponse(buf: Buffer): DeltaResponseOut {
  const msg = deltaResponseType().decode(buf) as unknown as Partial<DeltaResponseOut>;
  return {
    systemVersionInfo: msg.systemVersionInfo ?? '',
    typeUrl: msg.typeUrl ?? '',
    nonce: msg.nonce ?? '',
    removedResources: msg.removedResources ?? [],
    resources: (msg.resources ?? []).map((r) => ({ name: r.name ?? '', version: r.version ?? '', resource: r.resource ?? { typeUrl: '', value: new Uint8Array() } })),
  };
}

type Codec = Pick<grpc.MethodDefinition<unknown, unknown>, 'requestSerialize' | 'requestDeserialize' | 'responseSerialize' | 'responseDeserialize'>;

const SOTW_CODEC: Codec = {
  requestSerialize: (r) => encodeDiscoveryRequest(r as never),
  requestDeserialize: decodeDiscoveryRequest,
  responseSerialize: (r) => encodeDiscoveryResponse(r as DiscoveryResponseOut),
  responseDeserialize: decodeDiscoveryResponse,
};

const DELTA_CODEC: Codec = {
  requestSerialize: (r) => encodeDeltaRequest(r as never),
  requestDeserialize: decodeDeltaRequest,
  responseSerialize: (r) => encodeDeltaResponse(r as DeltaResponseOut),
  responseDeserialize: decodeDeltaResponse,
};

/** Any other message: plain protobufjs objects (CSDS). */
function genericCodec(requestTypeName: string, responseTypeName: string): Codec {
  const req = () => lookupType(requestTypeName);
  const res = () => lookupType(responseTypeName);
  return {
    requestSerialize: (r) => Buffer.from(req().encode(r as never).finish()),
    requestDeserialize: (b: Buffer) => req().toObject(req().decode(b), { defaults: true, longs: String, enums: String }),
    responseSerialize: (r) => Buffer.from(res().encode(res().fromObject(r as never)).finish()),
    responseDeserialize: (b: Buffer) => res().toObject(res().decode(b), { defaults: true, longs: String, enums: String }),
  };
}

/**
 * A grpc-js service definition for one of Envoy's services, read from the loaded API (method
 * names, paths and streaming flags are Envoy's, never retyped here).
 */
export function serviceDefinition(fullName: string): grpc.ServiceDefinition {
  const service = envoyApi().lookupService(fullName);
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of Object.values(service.methods)) {
    method.resolve();
    const reqName = method.resolvedRequestType!.fullName.slice(1);
    const resName = method.resolvedResponseType!.fullName.slice(1);
    const codec =
      reqName === 'envoy.service.discovery.v3.DiscoveryRequest'
        ? SOTW_CODEC
        : reqName === 'envoy.service.discovery.v3.DeltaDiscoveryRequest'
          ? DELTA_CODEC
          : genericCodec(reqName, resName);
    def[method.name] = {
      path: `/${fullName}/${method.name}`,
      requestStream: !!method.requestStream,
      responseStream: !!method.responseStream,
      originalName: method.name,
      ...codec,
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return def as grpc.ServiceDefinition;
}
