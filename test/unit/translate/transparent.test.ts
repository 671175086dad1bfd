/**
 * Transparent mode, the pure pieces: node facts and bootstrap `--mode`, the transparent listener
 * (filter chains per table row, no default chain, never an ORIGINAL_DST cluster, drain epochs),
 * TCP access log entries -> decisions, and the redirect rules `exitgate redirect-rules` prints.
 * The real-Envoy behaviour is tested in test/security/transparent.test.ts.
 */
import { translate } from '../../../src/translate/translate';
import { transparentListenerName, TRANSPARENT_DENY_CLUSTER } from '../../../src/translate/transparent';
import { nodeFactsFromMetadata } from '../../../src/xds/node-facts';
import { bootstrapOptions } from '../../../src/cli/bootstrap';
import { bootstrapConfig } from '../../../src/envoy/bootstrap';
import { UsageError } from '../../../src/cli/errors';
import { encodeStrict } from '../../../src/xds/proto';
import { TYPE } from '../../../src/xds/type-urls';
import { mapTcpEntry, parseFilterChainName } from '../../../src/audit/decision';
import { FILTER_CHAIN_TAG } from '../../../src/translate/filters/access-log';
import { renderRedirectRules } from '../../../src/cli/redirect-rules';
import type { NodeFacts } from '../../../src/translate/options';
import type { TcpEntryJson } from '../../../src/audit/log-entry';
import { agentIrOf as irOf } from '../../support/policy-text';

const POLICY = `apiVersion: exitgate.dev/v1
kind: EgressPolicy
metadata: { name: p, tenant: acme }
spec:
  agents: ["coder"]
  allow:
    - name: api
      hosts: ["api.example.test"]
      ports: [443]
    - name: cdn
      hosts: ["*.cdn.example.test"]
      ports: [443]
    - name: plain
      hosts: ["plain.example.test"]
      ports: [80]
    - name: l7
      hosts: ["l7.example.test"]
      ports: [443]
      tls: originate
      http: { methods: ["GET"] }
  deny:
    - name: no-evil
      hosts: ["evil.cdn.example.test"]
  limits: { maxConnections: 10 }
`;

const NODE: NodeFacts = { listen: { address: '127.0.0.1', port: 15001 }, mode: 'transparent' };
type Chain = { name: string; filter_chain_match?: Record<string, unknown>; filters: Array<{ name: string; typed_config: Record<string, unknown> }>; metadata?: unknown };

describe('node facts and bootstrap --mode', () => {
  it('reads mode from node metadata: absent is proxy, transparent is kept, anything else is refused', () => {
    expect(nodeFactsFromMetadata({ exitgate: { listen: '127.0.0.1:15001' } })).toEqual({ ok: true, value: { listen: { address: '127.0.0.1', port: 15001 } } });
    expect(nodeFactsFromMetadata({ exitgate: { listen: '127.0.0.1:15001', mode: 'proxy' } })).toEqual({ ok: true, value: { listen: { address: '127.0.0.1', port: 15001 } } });
    expect(nodeFactsFromMetadata({ exitgate: { listen: '127.0.0.1:15001', mode: 'transparent' } })).toEqual({ ok: true, value: { listen: { address: '127.0.0.1', port: 15001 }, mode: 'transparent' } });
    const bad = nodeFactsFromMetadata({ exitgate: { listen: '127.0.0.1:15001', mode: 'tproxy' } });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.reason).toMatch(/mode "tproxy" must be one of proxy, transparent/);
  });

  it('bootstrap --mode transparent writes mode into node metadata; an unknown mode is a usage error', () => {
    const o = bootstrapOptions({ node: 'acme/coder/i1', xds: '127.0.0.1:18000', listen: '127.0.0.1:15001', mode: 'transparent' });
    expect(o.mode).toBe('transparent');
    const config = bootstrapConfig(o) as { node: { metadata: { exitgate: { mode: string } } } };
    expect(config.node.metadata.exitgate.mode).toBe('transparent');
    expect(encodeStrict('type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap', config as unknown as Record<string, unknown>).ok).toBe(true);
    const proxy = bootstrapConfig(bootstrapOptions({ node: 'acme/coder/i1', xds: '127.0.0.1:18000', listen: '127.0.0.1:15001' })) as { node: { metadata: { exitgate: { mode: string } } } };
    expect(proxy.node.metadata.exitgate.mode).toBe('proxy');
    expect(() => bootstrapOptions({ node: 'acme/coder/i1', xds: '127.0.0.1:18000', listen: '127.0.0.1:15001', mode: 'tproxy' })).toThrow(UsageError);
  });
});

describe('the transparent listener', () => {
  const set = translate(irOf(POLICY), { ...NODE, drainEpoch: 3 }, { guardAllow: [] });
  const listener = set.listeners[0]!.resource as { name: string; filter_chains: Chain[]; default_filter_chain?: unknown; listener_filters: Array<{ name: string }> };
  const chains = listener.filter_chains;
  const byName = (n: string): Chain => {
    const c = chains.find((x) => x.name === n);
    if (!c) throw new Error(`no chain ${n} in ${chains.map((x) => x.name).join(', ')}`);
    return c;
  };

  it('is one listener with original_dst and tls_inspector, no default filter chain, and encodes strictly', () => {
    expect(set.listeners.map((l) => l.name)).toEqual([transparentListenerName('acme', 'coder')]);
    expect(listener.listener_filters.map((f) => f.name)).toEqual(['envoy.filters.listener.original_dst', 'envoy.filters.listener.tls_inspector']);
    expect(listener.default_filter_chain).toBeUndefined();
    expect(encodeStrict(TYPE.listener, listener as unknown as Record<string, unknown>).ok).toBe(true);
    for (const c of set.clusters) expect(encodeStrict(TYPE.cluster, c.resource).ok).toBe(true);
  });

  it('allows a row by port + SNI, resolving the SNI itself and tunnelling to the DFP cluster (never ORIGINAL_DST)', () => {
    const api = byName('tls/allow/p/api/api.example.test:443');
    expect(api.filter_chain_match).toEqual({ destination_port: 443, server_names: ['api.example.test'], transport_protocol: 'tls' });
    expect(api.filters.map((f) => f.name)).toEqual(['envoy.filters.network.connection_limit', 'envoy.filters.network.sni_dynamic_forward_proxy', 'envoy.filters.network.tcp_proxy']);
    expect(api.filters[1]!.typed_config.port_value).toBe(443);
    // The same guarded DNS cache as the DFP cluster (Envoy requires identical configs).
    const dfp = set.clusters.find((c) => c.name === 'exitgate/dfp')!.resource as { cluster_type: { typed_config: { dns_cache_config: unknown } } };
    expect(api.filters[1]!.typed_config.dns_cache_config).toEqual(dfp.cluster_type.typed_config.dns_cache_config);
    expect(api.filters[2]!.typed_config.cluster).toBe('exitgate/dfp');
    expect(byName('tls/allow/p/cdn/*.cdn.example.test:443').filter_chain_match?.server_names).toEqual(['*.cdn.example.test']);
    for (const c of set.clusters) expect(JSON.stringify(c.resource)).not.toMatch(/ORIGINAL_DST/);
  });

  it('closes a deny inside a wildcard, and an L7-only host, through a cluster with no endpoints', () => {
    for (const n of ['tls/deny/p/no-evil/evil.cdn.example.test:443', 'tls/no-tunnel/p/l7/l7.example.test:443']) {
      const c = byName(n);
      expect(c.filters.map((f) => f.name)).toEqual(['envoy.filters.network.connection_limit', 'envoy.filters.network.tcp_proxy']);
      expect(c.filters[1]!.typed_config.cluster).toBe(TRANSPARENT_DENY_CLUSTER);
    }
    const deny = set.clusters.find((c) => c.name === TRANSPARENT_DENY_CLUSTER)!.resource as { load_assignment: { endpoints: unknown[] } };
    expect(deny.load_assignment.endpoints).toEqual([]);
  });

  it('judges plain HTTP per listed port with the RDS route configuration', () => {
    for (const port of [80, 443]) {
      const c = byName(`http/${port}`);
      expect(c.filter_chain_match).toEqual({ destination_port: port, transport_protocol: 'raw_buffer' });
      const hcm = c.filters[c.filters.length - 1]!;
      expect(hcm.name).toBe('envoy.filters.network.http_connection_manager');
      expect((hcm.typed_config.rds as { route_config_name: string }).route_config_name).toBe('exitgate/acme/coder/egress');
    }
  });

  it('carries the drain epoch on every filter chain (revocation drains tunnels)', () => {
    for (const c of chains) expect(c.metadata).toEqual({ filter_metadata: { exitgate: { drain_epoch: 3 } } });
  });

  it('an agent with no rule gets a listener whose only chain nothing matches', () => {
    const empty = translate(irOf(POLICY.replace(/agents: \["coder"\]/, 'agents: ["other"]')), NODE, { guardAllow: [] }).listeners[0]!.resource as { filter_chains: Chain[] };
    expect(empty.filter_chains.map((c) => [c.name, c.filter_chain_match])).toEqual([['tls/deny/default-deny/*:1', { destination_port: 1 }]]);
    expect(empty.filter_chains[0]!.filters.map((f) => f.typed_config.cluster)).toEqual([TRANSPARENT_DENY_CLUSTER]);
  });

  it('proxy mode is unchanged: the egress listener, no transparent-deny cluster', () => {
    const proxy = translate(irOf(POLICY), { listen: NODE.listen }, { guardAllow: [] });
    expect(proxy.listeners.map((l) => l.name)).toEqual(['exitgate/acme/coder/egress']);
    expect(proxy.clusters.map((c) => c.name)).not.toContain(TRANSPARENT_DENY_CLUSTER);
  });
});

describe('TCP access log entries -> decisions', () => {
  const node = { tenant: 'acme', agent: 'coder', instance: 'i1' };
  const common = (extra: Record<string, unknown>) => ({
    downstreamRemoteAddress: { socketAddress: { address: '198.18.0.2', portValue: 40000 } },
    downstreamLocalAddress: { socketAddress: { address: '203.0.113.9', portValue: 443 } },
    tlsProperties: { tlsSniHostname: 'api.example.test' },
    startTime: '2026-12-04T18:00:00Z',
    streamId: 's1',
    ...extra,
  });
  const entry = (extra: Record<string, unknown>, props: Record<string, unknown> = {}): TcpEntryJson => ({ commonProperties: common(extra), connectionProperties: props });
  const tag = (name: string) => ({ customTags: { [FILTER_CHAIN_TAG]: name } });

  it('parses filter chain names', () => {
    expect(parseFilterChainName('tls/allow/p/api/api.example.test:443')).toEqual({ verdict: 'allow', policy: 'p', rule: 'api' });
    expect(parseFilterChainName('tls/would-deny/default-deny/*:443')).toEqual({ verdict: 'would-deny' });
    expect(parseFilterChainName('tls/deny/default-deny/*:1')).toEqual({ verdict: 'deny' });
    expect(parseFilterChainName('http/80')).toBeNull();
    expect(parseFilterChainName(undefined)).toBeNull();
  });

  it('an allowed tunnel: a decision when connected, completed when it ends', () => {
    const up = { upstreamRemoteAddress: { socketAddress: { address: '198.51.100.2', portValue: 443 } } };
    const open = mapTcpEntry(node, entry({ ...tag('tls/allow/p/api/api.example.test:443'), ...up, accessLogType: 'TcpUpstreamConnected' }));
    expect(open).toMatchObject({ kind: 'decision', decision: { verdict: 'allow', host: 'api.example.test', port: 443, policy: 'p', rule: 'api', tunnel: 'open', upstreamAddress: '198.51.100.2:443' } });
    const end = mapTcpEntry(node, entry({ ...tag('tls/allow/p/api/api.example.test:443'), ...up, accessLogType: 'TcpConnectionEnd', duration: '0.5s' }, { receivedBytes: '10', sentBytes: '20' }));
    expect(end).toMatchObject({ kind: 'tunnel-end', decision: { bytesSent: 10, bytesReceived: 20, durationMs: 500 } });
    expect(end.kind === 'tunnel-end' && open.kind === 'decision' ? end.tunnelKey === open.tunnelKey : false).toBe(true);
  });

  it('deny and no-tunnel chains, the guard (no healthy upstream), and no filter chain are denials', () => {
    expect(mapTcpEntry(node, entry({ ...tag('tls/deny/p/no-evil/evil.cdn.example.test:443'), responseFlags: { noHealthyUpstream: true } }))).toMatchObject({ decision: { verdict: 'deny', rule: 'no-evil', reason: 'denied by p/no-evil' } });
    expect(mapTcpEntry(node, entry({ ...tag('tls/no-tunnel/p/l7/l7.example.test:443') }))).toMatchObject({ decision: { verdict: 'deny', rule: 'l7' } });
    expect(mapTcpEntry(node, entry({ ...tag('tls/allow/p/r/*.rebind.test:443'), responseFlags: { noHealthyUpstream: true }, accessLogType: 'TcpConnectionEnd' }))).toMatchObject({ decision: { verdict: 'deny', rule: 'r', reason: expect.stringMatching(/^guard/) } });
    expect(mapTcpEntry(node, entry({ responseFlags: { noRouteFound: true }, tlsProperties: {} }))).toMatchObject({ decision: { verdict: 'deny', host: '', port: 443, reason: expect.stringMatching(/no TLS server name/) } });
    expect(mapTcpEntry(node, entry({ responseFlags: { noRouteFound: true }, tlsProperties: { tlsSniHostname: '10.0.0.5' } }))).toMatchObject({ decision: { verdict: 'deny', reason: expect.stringMatching(/IP literal/) } });
  });

  it('dry-run chains are would-deny; HTTP chains and untagged entries are left to the HCM log', () => {
    const up = { upstreamRemoteAddress: { socketAddress: { address: '198.51.100.2', portValue: 443 } }, accessLogType: 'TcpUpstreamConnected' };
    expect(mapTcpEntry(node, entry({ ...tag('tls/would-deny/default-deny/*:443'), ...up }))).toMatchObject({ decision: { verdict: 'would-deny', reason: 'no rule matches' } });
    expect(mapTcpEntry(node, entry({ ...tag('http/80') })).kind).toBe('ignored');
    expect(mapTcpEntry(node, entry({})).kind).toBe('ignored');
  });
});

describe('exitgate redirect-rules', () => {
  it('prints an nft script that exempts the proxy uid and loopback-to-sidecar, redirects TCP, drops the rest', () => {
    const text = renderRedirectRules({ listenPort: '15001', proxyUid: '1337', allowUdp: ['10.0.0.10/32:53'] });
    expect(text).toContain('meta skuid 1337 return');
    expect(text).toContain('ip daddr 127.0.0.1 tcp dport 15001 return');
    expect(text).toContain('meta l4proto tcp redirect to :15001');
    expect(text).toContain('ip daddr 10.0.0.10/32 udp dport 53 accept');
    expect(text.indexOf('udp dport 53 accept')).toBeLessThan(text.indexOf('counter drop'));
  });

  it('refuses bad flags with a usage error', () => {
    expect(() => renderRedirectRules({ listenPort: '0', proxyUid: '0' })).toThrow(UsageError);
    expect(() => renderRedirectRules({ listenPort: 'x', proxyUid: '0' })).toThrow(UsageError);
    expect(() => renderRedirectRules({ listenPort: '15001', proxyUid: '-1' })).toThrow(UsageError);
    expect(() => renderRedirectRules({ listenPort: '15001', proxyUid: '0', allowUdp: ['10.0.0.10/32'] })).toThrow(UsageError);
  });
});
