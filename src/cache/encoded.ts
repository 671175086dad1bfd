/**
 * Encoded resources, versioned by content. A resource is encoded once and its bytes are shared by
 * every node whose snapshot holds it (ARCHITECTURE.md principle 5): the interning table maps the
 * hash of a resource's JSON to its encoded form.
 */
import { createHash } from 'node:crypto';
import { encodeStrict } from '../xds/proto';
import type { Result } from '../util/result';

export interface EncodedResource {
  name: string;
  typeUrl: string;
  /** sha256 of the encoded bytes, hex: the resource's version. */
  hash: string;
  value: Uint8Array;
}

export const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** The bytes in an ArrayBuffer of their own, exactly their size (never a view into a larger one). */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
}

/**
 * Interns encoded resources by the hash of their canonical JSON text. Entries no snapshot uses are
 * dropped by `retainOnly`, so memory follows the live configuration, not its history.
 */
export class EncodedResourceTable {
  private readonly byJson = new Map<string, EncodedResource>();

  encode(typeUrl: string, name: string, json: Record<string, unknown>): Result<EncodedResource> {
    const key = sha256(`${typeUrl}\n${JSON.stringify(json)}`);
    const hit = this.byJson.get(key);
    if (hit) return { ok: true, value: hit };
    const bytes = encodeStrict(typeUrl, json);
    if (!bytes.ok) return { ok: false, errors: bytes.errors.map((e) => `${name}: ${e}`) };
    // protobufjs returns a Buffer from Node's allocation pool: a view into a shared 8 KB slab,
    // which this long-lived value would keep alive on its own (measured: one slab per resource,
    // 16 KB per agent). Kept as an exact-size copy instead.
    const encoded: EncodedResource = { name, typeUrl, hash: sha256(bytes.value), value: ownBytes(bytes.value) };
    this.byJson.set(key, encoded);
    return { ok: true, value: encoded };
  }

  /** Keeps only the entries whose encoded form is in `live`. */
  retainOnly(live: ReadonlySet<EncodedResource>): void {
    for (const [key, res] of this.byJson) if (!live.has(res)) this.byJson.delete(key);
  }

  get size(): number {
    return this.byJson.size;
  }
}
