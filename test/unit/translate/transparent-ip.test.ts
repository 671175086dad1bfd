/**
 * Transparent mode's IP destinations (`cidrs` rules): chains matched on the original destination's
 * port and address, which tunnel to that address (ORIGINAL_DST without header override), with
 * ranges made disjoint so Envoy's longest-prefix choice gives first-match attribution and lets
 * deny rules win; L7-only ranges get a plain-HTTP chain; the decisions those chains log.
 * The real-Envoy behaviour is in test/security/transparent.test.ts.
 */
import { translate } from '../../../src/translate/translate';
import { IP_CLUSTER, IP_TUNNEL_CLUSTER } from '../../../src/translate/names';
import { mapTcpEntry, parseFilterChainName } from '../../../src/audit/decision';
import { FILTER_CHAIN_TAG } from '../../../src/translate/filters/access-log';
import type { NodeFacts } from '../../../src/translate/options';
import { agentIrOf } from '../../support/policy-text';

const irOf = (spec: string) => agentIrOf(`apiVersion: exitgate.dev/v1\nkind: EgressPolicy\nmetadata: { name: p, tenant: acme }\nspec:\n  agents: ["coder"]\n${spec}`);

const NODE: NodeFacts = { listen: { address: '127.0.0.1', port: 15001 }, mode: 'transparent' };
type Chain = { name: string; filter_chain_match?: { destination_port?: number; prefix_ranges?: Array<{ address_prefix: string; prefix_len: number }>; transport_protocol?: string }; filters: Array<{ name: string; typed_config: Record<string, unknown> }> };

function chainsOf(spec: string, node: NodeFacts = NODE): { chains: Chain[]; clusters: string[] } {
  const out = translate(irOf(spec), node, { guardAllow: [] });
  return { chains: (out.listeners[0]!.resource as { filter_chains: Chain[] }).filter_chains, clusters: out.clusters.map((c) => c.name) };
}

const ranges = (c: Chain | undefined): string[] => (c?.filter_chain_match?.prefix_ranges ?? []).map((r) => `${r.address_prefix}/${r.prefix_len}`);

describe('transparent mode: cidrs chains', () => {
  const SPEC = `  allow:
    - name: first
      cidrs: ["203.0.113.0/24"]
      ports: [9090]
    - name: second
      cidrs: ["203.0.113.0/25", "198.51.100.7"]
      ports: [9090, 9091]
    - name: l7-only
      cidrs: ["192.0.2.0/28"]
      ports: [8080]
      http: { methods: [GET] }
  deny:
    - name: corner
      cidrs: ["203.0.113.128/26"]
      ports: [9090]
    - name: everywhere
      cidrs: ["198.51.100.7"]
      ports: [9091]
`;

  it('tunnel chains hold the allowed ranges minus deny ranges, each rule only what earlier rules left', () => {
    const { chains } = chainsOf(SPEC);
    const ip = chains.filter((c) => c.name.startsWith('ip/'));
    expect(ip.map((c) => [c.name, c.filter_chain_match?.destination_port, ranges(c)])).toEqual([
      ['ip/allow/p/first/203.0.113.0/25+:9090', 9090, ['203.0.113.0/25', '203.0.113.192/26']],
      ['ip/allow/p/second/198.51.100.7/32:9090', 9090, ['198.51.100.7/32']],
      ['ip/allow/p/second/203.0.113.0/25:9091', 9091, ['203.0.113.0/25']],
    ]);
    for (const c of ip) {
      expect(c.filter_chain_match?.transport_protocol).toBeUndefined();
      const proxy = c.filters.find((f) => f.name === 'envoy.filters.network.tcp_proxy');
      expect(proxy?.typed_config.cluster).toBe(IP_TUNNEL_CLUSTER);
    }
  });

  it('an L7-only range gets a plain-HTTP chain whose routes decide; TLS there finds no chain', () => {
    const { chains } = chainsOf(SPEC);
    const l7 = chains.find((c) => c.name === 'http/8080/ip');
    expect(l7?.filter_chain_match).toEqual({ destination_port: 8080, prefix_ranges: [{ address_prefix: '192.0.2.0', prefix_len: 28 }], transport_protocol: 'raw_buffer' });
    expect(l7?.filters.map((f) => f.name)).toContain('envoy.filters.network.http_connection_manager');
    expect(chains.filter((c) => c.filter_chain_match?.destination_port === 8080)).toHaveLength(1);
  });

  it('the tunnel cluster dials the original destination (no header override), and exists only with a tunnel rule', () => {
    const { clusters } = chainsOf(SPEC);
    expect(clusters).toContain(IP_TUNNEL_CLUSTER);
    expect(clusters).toContain(IP_CLUSTER);
    const out = translate(irOf(SPEC), NODE, { guardAllow: [] });
    expect(out.clusters.find((c) => c.name === IP_TUNNEL_CLUSTER)?.resource).toEqual({ name: IP_TUNNEL_CLUSTER, type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '5s' });
    expect(chainsOf(`  allow:\n    - name: h\n      hosts: ["a.example.test"]\n`).clusters).not.toContain(IP_TUNNEL_CLUSTER);
    // The explicit proxy never has it: there, IP destinations go through routes (exitgate/ip).
    expect(chainsOf(SPEC, { listen: NODE.listen }).clusters).not.toContain(IP_TUNNEL_CLUSTER);
  });

  it('no chain for a range every deny covers', () => {
    const { chains } = chainsOf(`  allow:\n    - name: a\n      cidrs: ["203.0.113.0/24"]\n      ports: [9090]\n  deny:\n    - name: d\n      cidrs: ["203.0.113.0/24"]\n`);
    expect(chains.filter((c) => c.name.startsWith('ip/'))).toEqual([]);
  });

  it('tunnels share one rate-limit bucket per agent (share_key); deny chains take no token', () => {
    const { chains } = chainsOf(`  allow:\n    - name: a\n      cidrs: ["203.0.113.0/24"]\n      ports: [9090]\n    - name: h\n      hosts: ["a.example.test"]\n  deny:\n    - name: d\n      hosts: ["b.a.example.test"]\n  limits: { requestsPerMinute: 60 }\n`);
    const limited = chains.filter((c) => c.filters.some((f) => f.name === 'envoy.filters.network.local_ratelimit'));
    expect(limited.map((c) => c.name).sort()).toEqual(['ip/allow/p/a/203.0.113.0/24:9090', 'tls/allow/p/h/a.example.test:443']);
    const keys = new Set(limited.map((c) => c.filters.find((f) => f.name === 'envoy.filters.network.local_ratelimit')!.typed_config.share_key));
    expect([...keys]).toEqual(['exitgate/acme/coder/tunnels']);
  });
});

describe('decisions from IP tunnel chains', () => {
  const node = { tenant: 'acme', agent: 'coder', instance: 'pod-1' };
  const entry = (extra: Record<string, unknown>) => ({
    commonProperties: {
      downstreamRemoteAddress: { socketAddress: { address: '198.18.0.2', portValue: 40000 } },
      downstreamLocalAddress: { socketAddress: { address: '203.0.113.7', portValue: 9090 } },
      startTime: '2026-12-04T18:00:00Z',
      streamId: 's1',
      customTags: { [FILTER_CHAIN_TAG]: 'ip/allow/p/first/203.0.113.0/24:9090' },
      ...extra,
    },
  });

  it('parses the chain name and records the original destination as the host', () => {
    expect(parseFilterChainName('ip/allow/p/first/203.0.113.0/24:9090')).toEqual({ verdict: 'allow', policy: 'p', rule: 'first', ip: true });
    const up = { upstreamRemoteAddress: { socketAddress: { address: '203.0.113.7', portValue: 9090 } }, accessLogType: 'TcpUpstreamConnected' };
    expect(mapTcpEntry(node, entry(up))).toMatchObject({ kind: 'decision', decision: { verdict: 'allow', host: '203.0.113.7', port: 9090, policy: 'p', rule: 'first', tunnel: 'open' } });
  });

  it('an allowed address that does not answer is still an allow (no guard: no DNS involved)', () => {
    const d = mapTcpEntry(node, entry({ responseFlags: { upstreamConnectionFailure: true }, accessLogType: 'TcpConnectionEnd' }));
    expect(d).toMatchObject({ kind: 'decision', decision: { verdict: 'allow', rule: 'first', host: '203.0.113.7' } });
  });
});
