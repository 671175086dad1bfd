/**
 * A small CA for xDS mTLS (SPEC §3 `exitgate ca init`, `exitgate cert`): ECDSA P-256 keys,
 * certificates built with @peculiar/x509 (no hand-written ASN.1). A `--tls-dir` holds `ca.crt`,
 * `tls.crt` and `tls.key`; a CA directory holds `ca.crt`, `ca.key` and `trust-domain`.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import { agentSpiffeId, isTrustDomain } from './spiffe';
import type { NodeId } from './node-id';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export interface CaFiles {
  certPem: string;
  keyPem: string;
  trustDomain: string;
}

const pemKey = async (key: CryptoKey): Promise<string> => {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
};

const randomSerial = (): string => Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');

async function writeFiles(dir: string, files: Record<string, { text: string; mode: number }>): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [name, f] of Object.entries(files)) {
    const target = path.join(dir, name);
    const tmp = `${target}.tmp-${process.pid}`;
    await fs.writeFile(tmp, f.text, { mode: f.mode });
    await fs.rename(tmp, target); // readers (Envoy, grpc-js cert watchers) never see half a file
  }
}

export async function initCa(dir: string, options: { trustDomain: string; validDays: number; now?: Date }): Promise<CaFiles> {
  if (!isTrustDomain(options.trustDomain)) throw new Error(`trust domain ${JSON.stringify(options.trustDomain)} is not a valid DNS-like name`);
  const exists = await fs.stat(path.join(dir, 'ca.key')).then(() => true, () => false);
  if (exists) throw new Error(`${dir} already holds a CA (ca.key); refusing to overwrite it`);
  const now = options.now ?? new Date();
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=exitgate CA ${options.trustDomain}`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + options.validDays * 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${options.trustDomain}` }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const files = { certPem: cert.toString('pem'), keyPem: await pemKey(keys.privateKey), trustDomain: options.trustDomain };
  await writeFiles(dir, {
    'ca.crt': { text: files.certPem, mode: 0o644 },
    'ca.key': { text: files.keyPem, mode: 0o600 },
    'trust-domain': { text: `${options.trustDomain}\n`, mode: 0o644 },
  });
  return files;
}

export async function readCa(dir: string): Promise<CaFiles> {
  const read = (name: string) =>
    fs.readFile(path.join(dir, name), 'utf8').catch(() => {
      throw new Error(`${path.join(dir, name)} is missing; create a CA with \`exitgate ca init ${dir}\``);
    });
  return { certPem: await read('ca.crt'), keyPem: await read('ca.key'), trustDomain: (await read('trust-domain')).trim() };
}

interface IssueOptions {
  validHours: number;
  now?: Date;
}

async function issue(ca: CaFiles, subject: string, sans: x509.JsonGeneralName[], usage: string, o: IssueOptions): Promise<{ certPem: string; keyPem: string }> {
  const now = o.now ?? new Date();
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.keyPem), ALG, false, ['sign']);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + o.validHours * 3_600_000),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([usage], false),
      new x509.SubjectAlternativeNameExtension(sans, true),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await pemKey(keys.privateKey) };
}

/** A sidecar's client certificate: URI SAN spiffe://<td>/tenant/<T>/agent/<A>, short-lived. */
export async function issueNodeCert(caDir: string, node: NodeId, outDir: string, o: IssueOptions): Promise<{ spiffeId: string; notAfter: Date }> {
  const ca = await readCa(caDir);
  const spiffeId = agentSpiffeId(ca.trustDomain, node.tenant, node.agent);
  const { certPem, keyPem } = await issue(ca, `CN=${node.tenant}/${node.agent}`, [{ type: 'url', value: spiffeId }], x509.ExtendedKeyUsage.clientAuth, o);
  await writeTlsDir(outDir, ca.certPem, certPem, keyPem);
  return { spiffeId, notAfter: new Date(new NodeX509(certPem).validTo) };
}

/** The control plane's serving certificate, for a DNS name or an IP address. */
export async function issueServerCert(caDir: string, names: string[], outDir: string, o: IssueOptions): Promise<{ notAfter: Date }> {
  const ca = await readCa(caDir);
  const sans: x509.JsonGeneralName[] = names.map((n) => (isIP(n) ? { type: 'ip', value: n } : { type: 'dns', value: n }));
  const { certPem, keyPem } = await issue(ca, `CN=${names[0]}`, sans, x509.ExtendedKeyUsage.serverAuth, o);
  await writeTlsDir(outDir, ca.certPem, certPem, keyPem);
  return { notAfter: new Date(new NodeX509(certPem).validTo) };
}

async function writeTlsDir(dir: string, caPem: string, certPem: string, keyPem: string): Promise<void> {
  await writeFiles(dir, {
    'ca.crt': { text: caPem, mode: 0o644 },
    'tls.crt': { text: certPem, mode: 0o644 },
    'tls.key': { text: keyPem, mode: 0o600 },
  });
}
