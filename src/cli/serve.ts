/** `exitgate serve`: run the control plane until SIGINT/SIGTERM. */
import { startControlPlane } from '../server/control-plane';
import { resolveAdminTokens } from '../config/admin-tokens';
import { createLogger } from '../util/logger';
import { cidrArg, hostPortArg } from './args';
import { UsageError } from './errors';
import { readFile } from 'node:fs/promises';

export interface ServeFlags {
  policies: string;
  xdsListen: string;
  adminListen: string;
  insecureXds?: boolean;
  tlsDir?: string;
  dnsResolver?: string;
  guardAllow?: string[];
  upstreamCa?: string;
  stateDir?: string;
  config?: string;
  logLevel?: string;
  /** Decision events as JSON lines to this file instead of the main log (SPEC §5). */
  decisionsLog?: string;
}

export async function serve(flags: ServeFlags): Promise<void> {
  // The trust bundle for TLS that sidecars originate is inlined into their clusters, so sidecars
  // on other machines verify with the same bundle without needing the file.
  const upstreamCaPem = flags.upstreamCa ? await readUpstreamCa(flags.upstreamCa) : undefined;
  // Admin API tokens: --config FILE and/or EXITGATE_ADMIN_TOKENS / EXITGATE_TENANT_TOKENS.
  // Errors name the file and field or the variable and entry, never a token.
  const tokens = await resolveAdminTokens(flags.config);
  if (!tokens.ok) throw new UsageError(tokens.errors.join('\n'));
  if (flags.insecureXds && flags.tlsDir) throw new UsageError('--insecure-xds and --tls-dir exclude each other');
  if (!flags.insecureXds && !flags.tlsDir) {
    throw new UsageError('xDS needs --tls-dir DIR (mTLS: ca.crt, tls.crt, tls.key; see `exitgate ca init` and `exitgate cert --server`) or --insecure-xds (loopback development only)');
  }
  const xdsListen = hostPortArg('--xds-listen', flags.xdsListen);
  const log = createLogger({ level: flags.logLevel ?? 'info' });
  if (flags.insecureXds) {
    if (!/^(127\.|::1$|localhost$)/.test(xdsListen.host)) {
      throw new UsageError(`--insecure-xds may only listen on loopback, not ${xdsListen.host}: anyone who reaches the port could read any agent's configuration`);
    }
    log.warn('INSECURE xDS (--insecure-xds): node identities are NOT verified, any local process can claim any node and read its configuration; loopback development only');
  }
  const cp = await startControlPlane({
    policiesDir: flags.policies,
    xdsListen,
    adminListen: hostPortArg('--admin-listen', flags.adminListen),
    guardAllow: (flags.guardAllow ?? []).map((c) => cidrArg('--guard-allow', c)),
    ...(flags.tlsDir ? { xdsTlsDir: flags.tlsDir } : {}),
    ...(flags.decisionsLog ? { decisionsLog: flags.decisionsLog } : {}),
    ...(upstreamCaPem ? { upstreamCaPem } : {}),
    ...(flags.stateDir ? { stateDir: flags.stateDir } : {}),
    adminTokens: tokens.value,
    ...(flags.dnsResolver ? { dnsResolver: toResolver(hostPortArg('--dns-resolver', flags.dnsResolver)) } : {}),
    log,
  }).catch((err: Error) => {
    // Invalid policies or an unusable --tls-dir: the user's to fix, so one clear message.
    throw new UsageError(err.message, 1);
  });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  log.info('shutting down');
  await cp.stop();
}

const toResolver = (hp: { host: string; port: number }) => ({ address: hp.host, port: hp.port });

async function readUpstreamCa(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch((err: Error) => {
    throw new UsageError(`--upstream-ca: cannot read ${file}: ${err.message}`);
  });
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--upstream-ca ${file} holds no PEM certificate`);
  return text;
}
