/** `exitgate envoy [ARGS]`: run the pinned Envoy binary with the given arguments. */
import { spawn } from 'node:child_process';
import { locateEnvoy } from '../envoy/locate';

export async function runEnvoy(args: string[]): Promise<number> {
  const bin = await locateEnvoy();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
