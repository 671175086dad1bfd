/**
 * Authentication of an xDS peer from its TLS client certificate, and authorization of the node id
 * it claims (SPEC §6.7: a node can only receive its own configuration). The TLS handshake requests
 * a client certificate but does not require one, so that a stream without one can be refused with
 * UNAUTHENTICATED; this module therefore verifies the certificate itself: issued and signed by our
 * CA, within its validity, a client certificate, with exactly one agent SPIFFE id of our trust domain.
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { parseAgentSpiffeId, uriSans, type WorkloadIdentity } from './spiffe';
import type { NodeId } from './node-id';

export type AuthResult = { ok: true; identity: WorkloadIdentity } | { ok: false; reason: string };

export interface TrustAnchor {
  ca: X509Certificate;
  trustDomain: string;
}

export function authenticatePeer(peer: PeerCertificate | undefined, anchor: TrustAnchor, now: Date = new Date()): AuthResult {
  if (!peer || !peer.raw || peer.raw.length === 0) return { ok: false, reason: 'no client certificate: sidecars must present one issued by the exitgate CA' };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(peer.raw);
  } catch {
    return { ok: false, reason: 'the client certificate cannot be parsed' };
  }
  if (!cert.checkIssued(anchor.ca) || !cert.verify(anchor.ca.publicKey)) return { ok: false, reason: 'the client certificate was not issued by the exitgate CA' };
  if (cert.ca) return { ok: false, reason: 'a CA certificate cannot identify a sidecar' };
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) return { ok: false, reason: `the client certificate is not valid now (valid ${cert.validFrom} to ${cert.validTo})` };
  if (cert.keyUsage && !cert.keyUsage.includes('1.3.6.1.5.5.7.3.2')) return { ok: false, reason: 'the certificate is not a client certificate' };
  const ids = uriSans(cert.subjectAltName).map(parseAgentSpiffeId);
  if (ids.length !== 1 || !ids[0]) return { ok: false, reason: 'the client certificate must carry exactly one spiffe://<trust-domain>/tenant/<T>/agent/<A> URI' };
  if (ids[0].trustDomain !== anchor.trustDomain) return { ok: false, reason: `the certificate's trust domain ${ids[0].trustDomain} is not ${anchor.trustDomain}` };
  return { ok: true, identity: ids[0] };
}

/** The node id's tenant and agent must be the certificate's. */
export function authorizeNode(identity: WorkloadIdentity, node: NodeId): { ok: true } | { ok: false; reason: string } {
  if (identity.tenant === node.tenant && identity.agent === node.agent) return { ok: true };
  return { ok: false, reason: `node ${node.tenant}/${node.agent}/${node.instance} does not match the certificate identity ${identity.tenant}/${identity.agent}` };
}
