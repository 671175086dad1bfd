/**
 * Access logs streamed to the control plane (SPEC §5; research/envoy-egress-notes.md §4): every
 * HTTP request and every CONNECT tunnel the egress HCM handles, and every connection the listener
 * closes without handing it to a filter chain, go to Envoy's gRPC access log service
 * (`envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`) on the control plane, over the
 * bootstrap's `exitgate-xds` cluster (the same HTTP/2 connection settings, and mTLS identity, as xDS).
 *
 * The control plane turns each entry into one decision event (src/audit/decision.ts). It needs from an entry
 * only what Envoy logs by default: the route name (`<policy>/<rule>` or `default-deny`, see
 * names.ts), the CONNECT target or absolute URI, the response code and its details, byte counts and
 * timings. No request header is logged (`additional_request_headers_to_log` stays empty): headers
 * may carry the agent's credentials.
 *
 * Delivery is best effort, as Envoy's gRPC access loggers are: entries are buffered up to
 * `buffer_size_bytes` per worker and flushed every `buffer_flush_interval`; while the control plane
 * is unreachable they are dropped (stat `access_logs.grpc_access_log.logs_dropped`), and enforcement
 * never waits for the log.
 */
import { XDS_CLUSTER } from '../names';

/** `log_name` of the HCM (request and tunnel) log, carried in the stream's identifier. */
export const HTTP_ACCESS_LOG_NAME = 'exitgate/egress/http';
/** `log_name` of the listener-level log: connections no filter chain took. */
export const LISTENER_ACCESS_LOG_NAME = 'exitgate/egress/listener';
/** `log_name` of the transparent listener's TCP log: TLS connections judged by SNI (tcp_proxy). */
export const TCP_ACCESS_LOG_NAME = 'exitgate/egress/tcp';
/**
 * Custom tag carrying the filter chain that took a connection (`%FILTER_CHAIN_NAME%`), which
 * names the rule in transparent mode (translate/transparent.ts). Envoy 1.40's AccessLogCommon has
 * no filter chain field; a CustomTag `value` is formatted with the access log formatter.
 */
export const FILTER_CHAIN_TAG = 'exitgate.filter_chain';

function commonConfig(logName: string, tagChain = false): Record<string, unknown> {
  return {
    log_name: logName,
    ...(tagChain ? { custom_tags: [{ tag: FILTER_CHAIN_TAG, value: '%FILTER_CHAIN_NAME%' }] } : {}),
    transport_api_version: 'V3',
    grpc_service: { envoy_grpc: { cluster_name: XDS_CLUSTER } },
    // Decisions should reach the admin API within a fraction of a second.
    buffer_flush_interval: '0.1s',
    // Per worker thread; what is still unsent when this fills (control plane away) is dropped.
    buffer_size_bytes: 65536,
  };
}

/** The HCM's `access_log` list: one gRPC logger for requests and tunnels. */
export function hcmAccessLog(): Record<string, unknown>[] {
  return [
    {
      name: 'envoy.access_loggers.http_grpc',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig',
        common_config: commonConfig(HTTP_ACCESS_LOG_NAME),
      },
    },
  ];
}

/**
 * The HCM's `access_log_options`: a CONNECT tunnel is logged when it is established (the decision,
 * at once, not when the tunnel ends hours later) and again when it closes (bytes and duration).
 */
export function hcmAccessLogOptions(): Record<string, unknown> {
  return { flush_log_on_tunnel_successfully_established: true };
}

/**
 * The listener's `access_log` list: connections that matched no filter chain. Envoy 1.40 logs every
 * connection here when it closes, including those the HCM handled (whose requests it logs itself),
 * so the filter keeps only the ones closed for want of a filter chain: flag NR, which the listener
 * sets with details `filter_chain_not_found`.
 */
export function listenerAccessLog(tagChain = false): Record<string, unknown>[] {
  return [
    {
      name: 'envoy.access_loggers.tcp_grpc',
      filter: { response_flag_filter: { flags: ['NR'] } },
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig',
        common_config: commonConfig(LISTENER_ACCESS_LOG_NAME, tagChain),
      },
    },
  ];
}

/**
 * The `access_log` of a transparent TLS filter chain's tcp_proxy: one entry when the upstream
 * connection is made (the decision, at once; `flush_access_log_on_connected`) and one when the
 * connection ends (bytes, duration), or only the latter when it never connected (a deny chain, the
 * guard). The filter chain's name, carried as a custom tag, says which rule decided.
 */
export function tcpProxyAccessLog(): Record<string, unknown>[] {
  return [
    {
      name: 'envoy.access_loggers.tcp_grpc',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig',
        common_config: commonConfig(TCP_ACCESS_LOG_NAME, true),
      },
    },
  ];
}
