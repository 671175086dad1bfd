/** `exitgate serve`: run the control plane until SIGINT/SIGTERM. */
import { startControlPlane } from '../server/control-plane';
import { createLogger } from '../util/logger';
import { cidrArg, hostPortArg } from './args';
import { UsageError } from './errors';

export interface ServeFlags {
  policies: string;
  xdsListen: string;
  adminListen: string;
  insecureXds?: boolean;
  tlsDir?: string;
  dnsResolver?: string;
  guardAllow?: string[];
  upstreamCa?: string;
  config?: string;
  logLevel?: string;
}

export async function serve(flags: ServeFlags): Promise<void> {
  if (flags.tlsDir || flags.config || flags.upstreamCa) {
    const flag = flags.tlsDir ? '--tls-dir' : flags.config ? '--config' : '--upstream-ca';
    throw new UsageError(`${flag} is not supported by this exitgate release yet`);
  }
  if (!flags.insecureXds) {
    throw new UsageError('xDS needs mTLS, which this release does not have yet: pass --insecure-xds (loopback development only)');
  }
  const xdsListen = hostPortArg('--xds-listen', flags.xdsListen);
  const log = createLogger({ level: flags.logLevel ?? 'info' });
  if (!/^(127\.|::1$|localhost$)/.test(xdsListen.host)) {
    throw new UsageError(`--insecure-xds may only listen on loopback, not ${xdsListen.host}: anyone who reaches the port could read any agent's configuration`);
  }
  log.warn('INSECURE xDS: node identities are not verified (no mTLS); use only on loopback for development');
  const cp = await startControlPlane({
    policiesDir: flags.policies,
    xdsListen,
    adminListen: hostPortArg('--admin-listen', flags.adminListen),
    guardAllow: (flags.guardAllow ?? []).map((c) => cidrArg('--guard-allow', c)),
    ...(flags.dnsResolver ? { dnsResolver: toResolver(hostPortArg('--dns-resolver', flags.dnsResolver)) } : {}),
    log,
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
