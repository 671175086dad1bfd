/** `exitgate status`: connected nodes, versions sent and acknowledged per type, NACK errors. */
import type { NodeStatus } from '../xds/node-registry';
import { shortType } from '../xds/type-urls';
import { hostPortArg } from './args';
import { UsageError } from './errors';
import { readFile } from 'node:fs/promises';

/** The admin token: --token-file, else EXITGATE_TOKEN (never a flag value: it would show in `ps`). */
async function token(flags: { tokenFile?: string }): Promise<string | undefined> {
  if (flags.tokenFile) {
    const text = await readFile(flags.tokenFile, 'utf8').catch((err: Error) => {
      throw new UsageError(`--token-file: cannot read ${flags.tokenFile}: ${err.message}`);
    });
    return text.trim();
  }
  return process.env.EXITGATE_TOKEN || undefined;
}

export async function status(flags: { admin: string; tokenFile?: string }): Promise<number> {
  const admin = hostPortArg('--admin', flags.admin);
  const bearer = await token(flags);
  let nodes: NodeStatus[];
  try {
    const res = await fetch(`http://${admin.host}:${admin.port}/v1/nodes`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
    if (res.status === 401) throw new UsageError('the admin API needs a token: set EXITGATE_TOKEN or pass --token-file FILE');
    if (!res.ok) throw new UsageError(`admin API answered ${res.status}: ${(await res.text()).trim()}`);
    nodes = (await res.json()) as NodeStatus[];
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot reach the admin API at ${flags.admin} (${(err as Error).message}); is \`exitgate serve\` running?`);
  }
  process.stdout.write(formatStatus(nodes));
  return 0;
}

export function formatStatus(nodes: NodeStatus[]): string {
  if (nodes.length === 0) return 'no nodes connected\n';
  const rows: string[][] = [['NODE', 'TYPE', 'SENT', 'ACKED', 'LAST NACK']];
  for (const n of nodes) {
    for (const [type, s] of Object.entries(n.resources)) {
      const synced = s.sentVersion === s.ackedVersion ? '' : ' (pending)';
      rows.push([n.node, shortType(type), s.sentVersion ?? '-', `${s.ackedVersion ?? '-'}${synced}`, s.lastNack ? `${s.lastNack.version}: ${s.lastNack.message}` : '']);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}
