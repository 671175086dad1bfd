/** `exitgate status`: connected nodes, versions sent and acknowledged per type, NACK errors. */
import type { NodeStatus } from '../xds/node-registry';
import { shortType } from '../xds/type-urls';
import { hostPortArg } from './args';
import { UsageError } from './errors';

export async function status(flags: { admin: string }): Promise<number> {
  const admin = hostPortArg('--admin', flags.admin);
  let nodes: NodeStatus[];
  try {
    const res = await fetch(`http://${admin.host}:${admin.port}/v1/nodes`);
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
