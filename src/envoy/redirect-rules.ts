/**
 * The redirect of transparent mode (`exitgate redirect-rules`): an nftables script that an operator
 * (or a pod's init container, as Istio's does) runs in the agent's network namespace, where the
 * sidecar Envoy runs too. Pure: the CLI prints it, the sealed tests apply exactly this text.
 *
 * - Every outbound TCP connection (IPv4 and IPv6, loopback included) of every user but the
 *   sidecar's is redirected to the transparent listener; Envoy reads the original destination
 *   (SO_ORIGINAL_DST, conntrack of this namespace) only to match the port, and dials its own
 *   resolution of the SNI or Host, never that address.
 * - Connections straight to the listener on loopback are left alone (they are already there).
 * - Every other outbound packet (UDP, ICMP, anything not TCP) of those users is dropped, except on
 *   loopback (it cannot leave the namespace) and what the operator allows (`--allow-udp`): the
 *   agent has no DNS of its own, so DNS cannot carry data out (bypass catalogue #18).
 * - The sidecar's user is exempt from both: Envoy's own upstream connections and DNS queries.
 *
 * Loopback TCP is redirected too (unlike Istio, which exempts 127.0.0.1): anything else listening
 * on the pod's loopback is unreachable for the agent, and a hostile agent cannot use a local
 * service as a relay. The Envoy admin interface is a unix socket (bootstrap.ts), not a port.
 */
export interface RedirectRulesOptions {
  /** The transparent listener's port (bootstrap `--listen`). */
  listenPort: number;
  /** The uid Envoy runs as: its traffic is neither redirected nor dropped. */
  proxyUid: number;
  /** UDP destinations the agent may still reach directly, e.g. `{ cidr: '10.0.0.10/32', port: 53 }`. */
  allowUdp?: Array<{ cidr: string; port: number }>;
  /** nftables table name (default `exitgate`). */
  table?: string;
}

export const DEFAULT_REDIRECT_TABLE = 'exitgate';

/** The nftables script (`nft -f FILE`); re-running it replaces the table, so it is idempotent. */
export function nftRedirectRules(o: RedirectRulesOptions): string {
  const table = o.table ?? DEFAULT_REDIRECT_TABLE;
  const port = o.listenPort;
  const udpAllows = (o.allowUdp ?? []).map((a) => `    ${a.cidr.includes(':') ? 'ip6' : 'ip'} daddr ${a.cidr} udp dport ${a.port} accept`);
  return [
    '#!/usr/sbin/nft -f',
    `# exitgate transparent mode: redirect the agent's TCP to the sidecar listener on port ${port},`,
    `# drop everything else it sends out. Run in the agent's network namespace (as root), before the agent starts.`,
    `# The sidecar runs as uid ${o.proxyUid}; its own traffic is exempt.`,
    `table inet ${table}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    '  chain agent_redirect {',
    '    type nat hook output priority -100; policy accept;',
    `    meta skuid ${o.proxyUid} return`,
    `    ip daddr 127.0.0.1 tcp dport ${port} return`,
    `    ip6 daddr ::1 tcp dport ${port} return`,
    `    meta l4proto tcp redirect to :${port}`,
    '  }',
    '  chain agent_contain {',
    '    type filter hook output priority 0; policy accept;',
    `    meta skuid ${o.proxyUid} accept`,
    '    meta l4proto tcp accept',
    '    oifname "lo" accept',
    ...udpAllows,
    '    counter drop',
    '  }',
    '}',
    '',
  ].join('\n');
}
