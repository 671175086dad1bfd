/** The admin API tokens `exitgate serve` runs with: the config file's and the environment's, united. */
import { loadConfigFile } from './config-file';
import { mergeTokens, tokensFromEnv, type TokenConfig } from './tokens';

export async function resolveAdminTokens(configFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<{ ok: true; value: TokenConfig } | { ok: false; errors: string[] }> {
  const errors: string[] = [];
  const fromEnv = tokensFromEnv(env);
  if (!fromEnv.ok) errors.push(...fromEnv.errors);
  const fromFile = configFile !== undefined ? await loadConfigFile(configFile, env) : undefined;
  if (fromFile && !fromFile.ok) errors.push(...fromFile.errors);
  if (!fromEnv.ok || (fromFile && !fromFile.ok)) return { ok: false, errors };
  return mergeTokens(...(fromFile?.ok ? [fromFile.value.tokens] : []), fromEnv.value);
}
