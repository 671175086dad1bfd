/**
 * SDS secrets: a credential's value as a generic secret. The only resource that ever carries the
 * value, sent only to sidecars of agents whose policy references the credential (SPEC §2).
 */
import { credentialSecretName } from './names';
import type { CredentialValue } from './options';

export function credentialSecret(tenant: string, name: string, credential: CredentialValue): Record<string, unknown> {
  return { name: credentialSecretName(tenant, name), generic_secret: { secret: { inline_string: credential.value } } };
}
