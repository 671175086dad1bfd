/**
 * Envoy's access log entries as the control plane receives them: `envoy.data.accesslog.v3`
 * messages decoded to proto3 JSON (lowerCamel keys, RFC 3339 timestamps, durations as "1.5s",
 * 64-bit integers as strings, enums by name). Only the fields the decision mapping reads are typed;
 * the rest pass through untouched (and are never logged: they may name request headers).
 */
import protojson from 'protobufjs/ext/protojson';
import { lookupType } from '../xds/proto';

export interface SocketAddressJson {
  address?: string;
  portValue?: number;
}

export interface AddressJson {
  socketAddress?: SocketAddressJson;
  pipe?: { path?: string };
}

/** `envoy.data.accesslog.v3.AccessLogCommon`. */
export interface AccessLogCommonJson {
  startTime?: string;
  duration?: string;
  timeToFirstUpstreamRxByte?: string;
  timeToLastDownstreamTxByte?: string;
  downstreamRemoteAddress?: AddressJson;
  downstreamLocalAddress?: AddressJson;
  upstreamRemoteAddress?: AddressJson;
  tlsProperties?: { tlsSniHostname?: string };
  upstreamCluster?: string;
  /** Booleans by flag name (`dnsResolutionFailure`, `noHealthyUpstream`, ...). */
  responseFlags?: Record<string, unknown>;
  upstreamTransportFailureReason?: string;
  routeName?: string;
  connectionTerminationDetails?: string;
  streamId?: string;
  intermediateLogEntry?: boolean;
  downstreamWireBytesSent?: string | number;
  downstreamWireBytesReceived?: string | number;
  /** `DownstreamEnd`, `DownstreamTunnelSuccessfullyEstablished`, `TcpConnectionEnd`, ... */
  accessLogType?: string;
  /** The log's custom tags: the transparent listener's filter chain name (translate/filters/access-log.ts). */
  customTags?: Record<string, string>;
}

/** `envoy.data.accesslog.v3.HTTPAccessLogEntry`. */
export interface HttpEntryJson {
  commonProperties?: AccessLogCommonJson;
  protocolVersion?: string;
  request?: {
    requestMethod?: string;
    scheme?: string;
    authority?: string;
    path?: string;
    requestHeadersBytes?: string | number;
    requestBodyBytes?: string | number;
  };
  response?: {
    responseCode?: number;
    responseCodeDetails?: string;
    responseHeadersBytes?: string | number;
    responseBodyBytes?: string | number;
  };
}

/** `envoy.data.accesslog.v3.TCPAccessLogEntry`. */
export interface TcpEntryJson {
  commonProperties?: AccessLogCommonJson;
  connectionProperties?: { receivedBytes?: string | number; sentBytes?: string | number };
}

/** `envoy.service.accesslog.v3.StreamAccessLogsMessage`. */
export interface StreamAccessLogsMessageJson {
  identifier?: { node?: { id?: string }; logName?: string };
  httpLogs?: { logEntry?: HttpEntryJson[] };
  tcpLogs?: { logEntry?: TcpEntryJson[] };
}

const MESSAGE = 'envoy.service.accesslog.v3.StreamAccessLogsMessage';

/** Decodes one stream message to proto3 JSON (the form fixtures are written in). */
export function decodeAccessLogsMessage(bytes: Uint8Array): StreamAccessLogsMessageJson {
  const type = lookupType(MESSAGE);
  return protojson.toJson(type, type.decode(bytes)) as StreamAccessLogsMessageJson;
}

/** Encodes a proto3-JSON message (tests, and the fake sidecars of the stream tests). */
export function encodeAccessLogsMessage(json: StreamAccessLogsMessageJson): Uint8Array {
  const type = lookupType(MESSAGE);
  return type.encode(protojson.fromJson(type, json)).finish();
}

/** A uint64 as proto3 JSON carries it (a decimal string), as a number; 0 when absent. */
export function toCount(v: string | number | undefined): number {
  if (v === undefined) return 0;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

/** A proto3-JSON Duration ("0.012s") in milliseconds, or undefined. */
export function durationMs(d: string | undefined): number | undefined {
  if (d === undefined) return undefined;
  const m = /^(-?\d+(?:\.\d+)?)s$/.exec(d);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * 1e6) / 1e3;
}
