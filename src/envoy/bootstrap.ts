/**
 * The Envoy bootstrap of a sidecar (SPEC §3 `exitgate bootstrap`): node identity, the ADS
 * connection to the control plane, and an admin interface on a unix socket the agent cannot
 * reach (never a TCP port it shares; research/envoy-egress-notes.md §6). Validated strictly
 * against Envoy's Bootstrap message before it is printed.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { encodeStrict } from '../xds/proto';
import type { NodeId } from '../identity/node-id';
import { formatNodeId } from '../identity/node-id';
import type { Result } from '../util/result';
import { XDS_CLUSTER } from '../translate/names';
import type { SidecarMode, XdsProtocol } from '../translate/options';

export { XDS_CLUSTER };


export interface BootstrapOptions {
  node: NodeId;
  xds: { host: string; port: number };
  listen: { address: string; port: number };
  adminSocketPath: string;
  /** Default delta: ADS with incremental xDS. */
  xdsProtocol?: XdsProtocol;
  /** Default proxy. `transparent`: the listener takes connections redirected by `exitgate redirect-rules`. */
  mode?: SidecarMode;
  /** mTLS to the control plane: a directory with ca.crt, tls.crt, tls.key (absolute paths are written). */
  tlsDir?: string;
}

/**
 * The sidecar side of xDS mTLS: present the node certificate, trust only the exitgate CA, and
 * accept only a server certificate naming the address the bootstrap dials.
 */
function xdsTransportSocket(tlsDir: string, xdsHost: string): Record<string, unknown> {
  const file = (name: string) => ({ filename: path.resolve(tlsDir, name) });
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      ...(isIP(xdsHost) === 0 ? { sni: xdsHost } : {}),
      common_tls_context: {
        alpn_protocols: ['h2'],
        tls_certificates: [{ certificate_chain: file('tls.crt'), private_key: file('tls.key') }],
        validation_context: {
          trusted_ca: file('ca.crt'),
          match_typed_subject_alt_names: [{ san_type: isIP(xdsHost) === 0 ? 'DNS' : 'IP_ADDRESS', matcher: { exact: xdsHost } }],
        },
      },
    },
  };
}

/** A default admin socket path unique per node id, short enough for sun_path (108 bytes). */
export function defaultAdminSocketPath(node: NodeId): string {
  const digest = createHash('sha256').update(formatNodeId(node)).digest('hex').slice(0, 12);
  return path.join(os.tmpdir(), `exitgate-envoy-${digest}.sock`);
}

/** The ADS stream, or per-type config sources, for the chosen protocol variant. */
function dynamicResources(protocol: XdsProtocol): Record<string, unknown> {
  const grpcServices = [
    {
      envoy_grpc: {
        cluster_name: XDS_CLUSTER,
        // Reconnect quickly after a control-plane restart (the default backoff grows to 30 s);
        // the sidecar enforces its last configuration meanwhile, so a short retry is safe.
        retry_policy: { retry_back_off: { base_interval: '0.25s', max_interval: '2s' } },
      },
    },
  ];
  const apiType = protocol.startsWith('delta') ? 'DELTA_GRPC' : 'GRPC';
  if (protocol === 'sotw' || protocol === 'delta') {
    return {
      ads_config: { api_type: apiType, transport_api_version: 'V3', set_node_on_first_message_only: true, grpc_services: grpcServices },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    };
  }
  const source = {
    api_config_source: { api_type: apiType, transport_api_version: 'V3', set_node_on_first_message_only: true, grpc_services: grpcServices },
    resource_api_version: 'V3',
  };
  return { cds_config: source, lds_config: source };
}

export function bootstrapConfig(o: BootstrapOptions): Record<string, unknown> {
  const xdsIsIp = isIP(o.xds.host) !== 0;
  const protocol = o.xdsProtocol ?? 'delta';
  return {
    node: {
      id: formatNodeId(o.node),
      cluster: `${o.node.tenant}/${o.node.agent}`,
      // Read by the control plane to place the egress listener (xds/node-facts.ts).
      metadata: { exitgate: { listen: `${o.listen.address.includes(':') ? `[${o.listen.address}]` : o.listen.address}:${o.listen.port}`, mode: o.mode ?? 'proxy', xds: protocol } },
    },
    admin: { address: { pipe: { path: o.adminSocketPath, mode: 0o600 } } },
    dynamic_resources: dynamicResources(protocol),
    static_resources: {
      clusters: [
        {
          name: XDS_CLUSTER,
          type: xdsIsIp ? 'STATIC' : 'STRICT_DNS',
          connect_timeout: '1s',
          load_assignment: {
            cluster_name: XDS_CLUSTER,
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: o.xds.host, port_value: o.xds.port } } } }] }],
          },
          ...(o.tlsDir ? { transport_socket: xdsTransportSocket(o.tlsDir, o.xds.host) } : {}),
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: { connection_keepalive: { interval: '30s', timeout: '5s' } } },
            },
          },
        },
      ],
    },
    // Bounded downstream connections keep a flood from exhausting the sidecar (and silence
    // Envoy's warning about an unlimited listener).
    overload_manager: {
      resource_monitors: [
        {
          name: 'envoy.resource_monitors.global_downstream_max_connections',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
            max_active_downstream_connections: 10000,
          },
        },
      ],
    },
  };
}

/** The bootstrap as YAML, after a strict encode against envoy.config.bootstrap.v3.Bootstrap. */
export function bootstrapYaml(o: BootstrapOptions): Result<string> {
  const config = bootstrapConfig(o);
  const checked = encodeStrict('type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap', config);
  if (!checked.ok) return checked;
  return { ok: true, value: stringify(config) };
}
