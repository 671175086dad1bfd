/** `exitgate ca init DIR` and `exitgate cert ...`: the CA and certificates for xDS mTLS (SPEC §3). */
import { initCa, issueNodeCert, issueServerCert } from '../identity/certs';
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe';
import { nodeArg } from './args';
import { UsageError } from './errors';

export async function caInit(dir: string, flags: { trustDomain?: string; validDays?: string }): Promise<number> {
  const validDays = positive('--valid-days', flags.validDays ?? '3650');
  try {
    const ca = await initCa(dir, { trustDomain: flags.trustDomain ?? DEFAULT_TRUST_DOMAIN, validDays });
    process.stdout.write(`CA for trust domain ${ca.trustDomain} written to ${dir} (ca.crt, ca.key: keep ca.key private)\n`);
    return 0;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export interface CertFlags {
  node?: string;
  server?: boolean;
  name?: string[];
  ca: string;
  out: string;
  validHours?: string;
}

export async function cert(flags: CertFlags): Promise<number> {
  try {
    if (flags.server) {
      if (flags.node) throw new UsageError('--server and --node exclude each other');
      if (!flags.name || flags.name.length === 0) throw new UsageError('--server needs --name HOST (the name or IP sidecars dial), repeatable');
      const validHours = positive('--valid-hours', flags.validHours ?? String(90 * 24));
      const { notAfter } = await issueServerCert(flags.ca, flags.name, flags.out, { validHours });
      process.stdout.write(`server certificate for ${flags.name.join(', ')} written to ${flags.out} (valid until ${notAfter.toISOString()})\n`);
      return 0;
    }
    if (!flags.node) throw new UsageError('cert needs --node T/A/I (a sidecar certificate) or --server --name HOST');
    const node = nodeArg(flags.node);
    // Short-lived by default: a stolen sidecar certificate is worth little for long.
    const validHours = positive('--valid-hours', flags.validHours ?? '24');
    const { spiffeId, notAfter } = await issueNodeCert(flags.ca, node, flags.out, { validHours });
    process.stdout.write(`certificate ${spiffeId} written to ${flags.out} (valid until ${notAfter.toISOString()})\n`);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
}

function positive(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} ${JSON.stringify(value)} must be a positive number`);
  return n;
}
