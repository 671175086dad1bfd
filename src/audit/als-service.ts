/**
 * Envoy's gRPC access log service (`envoy.service.accesslog.v3.AccessLogService`), served on the
 * xDS port: each sidecar worker thread opens a client stream whose first message identifies the
 * node (`node.id = <tenant>/<agent>/<instance>`) and the log (`log_name`); every message then
 * carries a batch of HTTP or TCP entries (translate/filters/access-log.ts configures them).
 *
 * Attribution must not be forgeable: under mTLS the peer certificate is verified as for xDS, and a
 * stream whose node id names another tenant or agent than the certificate is refused with
 * PERMISSION_DENIED, so one sidecar cannot write decisions in another's name (SPEC §6.7). Without
 * mTLS (`--insecure-xds`, loopback development) the node id is taken as given.
 */
import type * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { serviceDefinition } from '../xds/grpc-codec';
import { GRPC_STATUS } from '../xds/messages';
import { authenticatePeer, authorizeNode, type TrustAnchor } from '../identity/peer-auth';
import { formatNodeId, parseNodeId, type NodeId } from '../identity/node-id';
import type { Logger } from '../util/logger';
import type { Metrics } from '../util/metrics';
import { decodeAccessLogsMessage, encodeAccessLogsMessage, type StreamAccessLogsMessageJson } from './log-entry';

export const ACCESS_LOG_SERVICE = 'envoy.service.accesslog.v3.AccessLogService';

/** Who sent a batch: the identified node and its log. */
export interface LogSource {
  node: NodeId;
  logName: string;
}

/** Where the entries of authenticated streams go (the decision trail). */
export interface AccessLogReceiver {
  receive(source: LogSource, message: StreamAccessLogsMessageJson): void;
}

export interface AccessLogServiceDeps {
  receiver: AccessLogReceiver;
  log: Logger;
  metrics?: Metrics;
  /** With mTLS: the CA and trust domain peers are verified against. Absent: --insecure-xds. */
  trust?: TrustAnchor;
}

type Call = grpc.ServerReadableStream<StreamAccessLogsMessageJson, Record<string, never>>;

/**
 * The grpc-js definition, read from Envoy's API, with messages decoded to proto3 JSON (the generic
 * codec's plain objects would spell timestamps and addresses differently from Envoy's own JSON).
 */
export function accessLogServiceDefinition(): grpc.ServiceDefinition {
  const base = serviceDefinition(ACCESS_LOG_SERVICE);
  const method = base.StreamAccessLogs as grpc.MethodDefinition<StreamAccessLogsMessageJson, unknown>;
  return {
    StreamAccessLogs: {
      ...method,
      requestSerialize: (m: StreamAccessLogsMessageJson) => Buffer.from(encodeAccessLogsMessage(m)),
      requestDeserialize: (b: Buffer) => decodeAccessLogsMessage(b),
    },
  } as grpc.ServiceDefinition;
}

let streamCounter = 0;

export function accessLogService(deps: AccessLogServiceDeps): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
  return {
    definition: accessLogServiceDefinition(),
    implementation: {
      StreamAccessLogs: (call: Call, callback: grpc.sendUnaryData<Record<string, never>>) => handleStream(deps, call, callback),
    },
  };
}

function handleStream(deps: AccessLogServiceDeps, call: Call, callback: grpc.sendUnaryData<Record<string, never>>): void {
  streamCounter += 1;
  const log = deps.log.child({ stream: streamCounter, protocol: 'als', peer: call.getPeer() });
  let source: LogSource | undefined;
  let done = false;
  let counted = false;
  const finish = (err?: { code: number; message: string }) => {
    if (done) return;
    done = true;
    if (counted) deps.metrics?.accessLogStreams.dec();
    if (err) {
      log.warn({ code: err.code, reason: err.message, node: source ? formatNodeId(source.node) : undefined }, 'access log stream refused');
      callback({ code: err.code, details: err.message } as grpc.ServiceError);
    } else {
      callback(null, {});
    }
  };

  let identity: ReturnType<typeof authenticatePeer> | undefined;
  if (deps.trust) {
    identity = authenticatePeer((call.getAuthContext() as { sslPeerCertificate?: PeerCertificate } | null)?.sslPeerCertificate, deps.trust);
    if (!identity.ok) return finish({ code: GRPC_STATUS.UNAUTHENTICATED, message: identity.reason });
  }

  call.on('data', (message: StreamAccessLogsMessageJson) => {
    if (done) return;
    if (message.identifier) {
      const id = parseNodeId(message.identifier.node?.id ?? '');
      if (!id.ok) return finish({ code: GRPC_STATUS.INVALID_ARGUMENT, message: id.reason });
      if (identity?.ok) {
        const allowed = authorizeNode(identity.identity, id.value);
        if (!allowed.ok) return finish({ code: GRPC_STATUS.PERMISSION_DENIED, message: allowed.reason });
      }
      const next = { node: id.value, logName: message.identifier.logName ?? '' };
      if (source && (formatNodeId(source.node) !== formatNodeId(next.node) || source.logName !== next.logName)) {
        return finish({ code: GRPC_STATUS.INVALID_ARGUMENT, message: 'the identifier of an access log stream cannot change' });
      }
      if (!source) {
        source = next;
        counted = true;
        deps.metrics?.accessLogStreams.inc();
        log.debug({ node: formatNodeId(source.node), logName: source.logName }, 'access log stream opened');
      }
    }
    if (!source) return finish({ code: GRPC_STATUS.INVALID_ARGUMENT, message: 'the first message of an access log stream must carry identifier.node.id' });
    try {
      deps.receiver.receive(source, message);
    } catch (err) {
      // A bad entry must not end the stream (Envoy would drop what it buffered meanwhile).
      log.error({ err: (err as Error).message }, 'access log entries could not be processed');
    }
  });
  call.on('end', () => finish());
  // Reset or cancelled by the sidecar (Envoy restarting, the connection lost): no status to send.
  const abandon = (why: string) => {
    if (done) return;
    done = true;
    if (counted) deps.metrics?.accessLogStreams.dec();
    log.debug({ why }, 'access log stream ended without a status');
  };
  call.on('error', (err) => abandon(err.message));
  call.on('cancelled', () => abandon('cancelled'));
}
