/**
 * Envoy 1.40's exact API, loaded from the FileDescriptorSet generated from go-control-plane/envoy
 * v1.40.0 (tools/envoy-api). Resources are encoded with protobufjs' ProtoJSON parser, which is
 * strict: a key the schema does not know is an error, so a typo can never silently remove a
 * guard (research/envoy-egress-notes.md §0; ARCHITECTURE.md principle 7).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import protobuf from 'protobufjs';
import 'protobufjs/ext/descriptor';
import protojson from 'protobufjs/ext/protojson';
import type { Result } from '../util/result';

export const ENVOY_API_DESCRIPTOR = path.resolve(__dirname, '..', '..', 'protos', 'envoy-api-1.40.0.pb');

let root: protobuf.Root | undefined;

/** The loaded API root (about 0.4 s the first time; shared afterwards). */
export function envoyApi(): protobuf.Root {
  if (!root) {
    const fromDescriptor = (protobuf.Root as unknown as { fromDescriptor(b: Buffer): protobuf.Root }).fromDescriptor;
    root = fromDescriptor(fs.readFileSync(ENVOY_API_DESCRIPTOR));
    root.resolveAll();
    pinFullNames(root);
  }
  return root;
}

/**
 * protobufjs computes `fullName` by walking up the parents and joining their names on every read,
 * and its ProtoJSON reader and writer read it for every message and every field they visit (to look
 * up well-known types, and for error messages): about half the time of encoding a resource. The
 * loaded API never changes, so each object's full name is computed once and kept as its own
 * property.
 */
function pinFullNames(obj: protobuf.ReflectionObject): void {
  Object.defineProperty(obj, 'fullName', { value: obj.fullName, writable: false, enumerable: false, configurable: true });
  if (obj instanceof protobuf.Type) {
    for (const f of obj.fieldsArray) pinFullNames(f);
    for (const o of obj.oneofsArray) pinFullNames(o);
  }
  if (obj instanceof protobuf.Service) for (const m of obj.methodsArray) pinFullNames(m);
  if (obj instanceof protobuf.Namespace) for (const n of obj.nestedArray) pinFullNames(n);
}

const types = new Map<string, protobuf.Type>();

/**
 * A message type of the loaded API by its full name. Memoized: protobufjs resolves a name by
 * walking namespaces, and every encoded resource and every xDS message on every stream looks up its
 * type.
 */
export function lookupType(fullName: string): protobuf.Type {
  let type = types.get(fullName);
  if (!type) types.set(fullName, (type = envoyApi().lookupType(fullName)));
  return type;
}

const typeNameOf = (typeUrl: string): string => typeUrl.slice(typeUrl.lastIndexOf('/') + 1);

/**
 * Encodes a proto3-JSON object (snake_case or lowerCamel keys, "@type" for Any, "1.5s" for
 * Duration) as the message named by `typeUrl`. Unknown fields, unknown enum values and wrong
 * types are errors naming the field.
 */
export function encodeStrict(typeUrl: string, json: Record<string, unknown>): Result<Uint8Array> {
  try {
    const type = lookupType(typeNameOf(typeUrl));
    const message = protojson.fromJson(type, json);
    return { ok: true, value: type.encode(message).finish() };
  } catch (err) {
    return { ok: false, errors: [`cannot encode ${typeNameOf(typeUrl)}: ${(err as Error).message}`] };
  }
}

/** Decodes bytes back to proto3 JSON (for golden files, config dumps, debugging). */
export function decodeToJson(typeUrl: string, bytes: Uint8Array): unknown {
  const type = lookupType(typeNameOf(typeUrl));
  return protojson.toJson(type, type.decode(bytes));
}
