/** A validated policy document together with where it came from. */
import type { Credential, EgressPolicy } from './schema';

export interface Source {
  file: string;
  doc: number;
}

export interface LoadedPolicy {
  policy: EgressPolicy;
  source: Source;
}

export interface LoadedCredential {
  credential: Credential;
  source: Source;
}

/** Everything a policy source yields: the unit that is applied whole or not at all. */
export interface PolicySet {
  policies: LoadedPolicy[];
  credentials: LoadedCredential[];
}
