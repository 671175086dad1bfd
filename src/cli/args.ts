/** Parsers for CLI option values; each failure says which flag is wrong and what it expects. */
import { parseHostPort } from '../xds/node-facts';
import { parseNodeId, type NodeId } from '../identity/node-id';
import { parseCidr, type Cidr } from '../util/cidr';
import { UsageError } from './errors';

export function hostPortArg(flag: string, value: string): { host: string; port: number } {
  const hp = parseHostPort(value);
  if (!hp) throw new UsageError(`${flag} ${JSON.stringify(value)} must be HOST:PORT (e.g. 127.0.0.1:18000)`);
  return hp;
}

export function nodeArg(value: string): NodeId {
  const id = parseNodeId(value);
  if (!id.ok) throw new UsageError(`--node: ${id.reason}`);
  return id.value;
}

export function cidrArg(flag: string, value: string): Cidr {
  const c = parseCidr(value);
  if (!c.ok) throw new UsageError(`${flag}: ${c.reason}`);
  return c.value;
}

/** commander accumulator for repeatable flags. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
