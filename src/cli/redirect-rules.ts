/** `exitgate redirect-rules`: print the nftables script that redirects an agent's TCP to its transparent sidecar. */
import { nftRedirectRules, type RedirectRulesOptions } from '../envoy/redirect-rules';
import { cidrArg } from './args';
import { UsageError } from './errors';
import { formatCidr } from '../util/cidr';

export interface RedirectRulesFlags {
  listenPort: string;
  proxyUid: string;
  allowUdp?: string[];
}

function intArg(flag: string, value: string, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) > max) throw new UsageError(`${flag} ${JSON.stringify(value)} must be an integer from 0 to ${max}`);
  return Number(value);
}

export function redirectRulesOptions(flags: RedirectRulesFlags): RedirectRulesOptions {
  const listenPort = intArg('--listen-port', flags.listenPort, 65535);
  if (listenPort === 0) throw new UsageError('--listen-port must be the transparent listener port (1-65535), as in `bootstrap --listen`');
  const proxyUid = intArg('--proxy-uid', flags.proxyUid, 4294967294);
  const allowUdp = (flags.allowUdp ?? []).map((v) => {
    const m = /^(.+):(\d{1,5})$/.exec(v);
    if (!m) throw new UsageError(`--allow-udp ${JSON.stringify(v)} must be CIDR:PORT (e.g. 10.0.0.10/32:53)`);
    return { cidr: formatCidr(cidrArg('--allow-udp', m[1]!)), port: intArg('--allow-udp port', m[2]!, 65535) };
  });
  return { listenPort, proxyUid, ...(allowUdp.length ? { allowUdp } : {}) };
}

export function renderRedirectRules(flags: RedirectRulesFlags): string {
  return nftRedirectRules(redirectRulesOptions(flags));
}
