/** Runs the translation benchmark (translation-worker.ts) several times, each in a fresh process. */
import * as path from 'node:path';
import { run } from '../lib/proc';

export interface TranslationRun {
  agents: number;
  tenants: number;
  rules: number;
  parseMs: number;
  reloadMs: number;
  buildMs: number;
  buildBytes: number;
  rss: number;
  oneAgent: Array<{ ms: number; changed: number }>;
  tenantWide: Array<{ ms: number; changed: number }>;
}

export async function runTranslation(o: { agents: number; tenants: number; rules: number; changes: number; runs: number; workDir: string; log: (l: string) => void }): Promise<TranslationRun[]> {
  const out: TranslationRun[] = [];
  for (let i = 0; i < o.runs; i++) {
    const args = JSON.stringify({ agents: o.agents, tenants: o.tenants, rules: o.rules, changes: o.changes, workDir: o.workDir });
    const r = await run(process.execPath, ['--expose-gc', '--max-old-space-size=12288', path.join(__dirname, 'translation-worker.js'), args], { timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`translation run failed (${r.code}): ${r.stderr.slice(-2000)}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as TranslationRun;
    o.log(`  translation run ${i + 1}/${o.runs}: build ${res.buildMs.toFixed(0)} ms, ${(res.buildBytes / 2 ** 20).toFixed(0)} MB`);
    out.push(res);
  }
  return out;
}
