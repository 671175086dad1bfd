/** `exitgate validate PATH...`: exit 0, or 1 with one error per line (SPEC §3). */
import { promises as fs } from 'node:fs';
import { listPolicyFiles, loadPolicyFiles } from '../policy/load';
import { formatPolicyError } from '../policy/errors';
import { UsageError } from './errors';

export async function validate(paths: string[]): Promise<number> {
  const files: string[] = [];
  for (const p of paths) {
    const stat = await fs.stat(p).catch(() => undefined);
    if (!stat) throw new UsageError(`${p}: no such file or directory`);
    files.push(...(stat.isDirectory() ? await listPolicyFiles(p) : [p]));
  }
  const loaded = await loadPolicyFiles(files);
  if (!loaded.ok) {
    for (const e of loaded.errors) process.stdout.write(`${formatPolicyError(e)}\n`);
    return 1;
  }
  process.stdout.write(`valid: ${files.length} file(s), ${loaded.value.policies.length} policies, ${loaded.value.credentials.length} credentials\n`);
  return 0;
}
