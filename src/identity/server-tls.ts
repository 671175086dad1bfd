/**
 * The xDS server's TLS: its certificate and the CA it trusts come from a `--tls-dir` (ca.crt,
 * tls.crt, tls.key), re-read when the files change so certificates rotate without a restart.
 * Client certificates are requested, not required, at the handshake: each stream then checks its
 * own peer (peer-auth.ts), which lets a missing certificate end with UNAUTHENTICATED.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { TrustAnchor } from './peer-auth';

export interface ServerTls {
  credentials: grpc.ServerCredentials;
  anchor: TrustAnchor;
  /**
   * Resolves once the certificate files have been read. grpc-js loads them asynchronously, and a
   * connection accepted before that has no secure context and is dropped, so a server should not
   * announce itself before this.
   */
  ready: Promise<void>;
}

export function loadServerTls(dir: string): ServerTls {
  const file = (name: string) => path.join(dir, name);
  let ca: X509Certificate;
  try {
    for (const name of ['ca.crt', 'tls.crt', 'tls.key']) readFileSync(file(name));
    ca = new X509Certificate(readFileSync(file('ca.crt')));
  } catch (err) {
    throw new Error(`--tls-dir ${dir} must hold ca.crt, tls.crt and tls.key (${(err as Error).message}); see \`exitgate ca init\` and \`exitgate cert --server\``);
  }
  const td = /URI:spiffe:\/\/([^/,\s]+)/.exec(ca.subjectAltName ?? '')?.[1];
  if (!td) throw new Error(`${file('ca.crt')} carries no spiffe://<trust-domain> URI; create the CA with \`exitgate ca init\``);
  const provider = new grpc.experimental.FileWatcherCertificateProvider({
    certificateFile: file('tls.crt'),
    privateKeyFile: file('tls.key'),
    caCertificateFile: file('ca.crt'),
    refreshIntervalMs: 60_000,
  });
  const ready = Promise.all([
    new Promise<void>((resolve) => provider.addCaCertificateListener(function first(update) {
      if (update) {
        provider.removeCaCertificateListener(first);
        resolve();
      }
    })),
    new Promise<void>((resolve) => provider.addIdentityCertificateListener(function first(update) {
      if (update) {
        provider.removeIdentityCertificateListener(first);
        resolve();
      }
    })),
  ]).then(() => undefined);
  return { credentials: grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false), anchor: { ca, trustDomain: td }, ready };
}
