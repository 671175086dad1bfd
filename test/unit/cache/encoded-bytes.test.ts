/**
 * An encoded resource's bytes are held in a buffer of their own: protobufjs hands out views into
 * Node's shared 8 KB allocation pool, and a long-lived view would pin the whole slab.
 */
import { EncodedResourceTable, ownBytes, sha256 } from '../../../src/cache/encoded';
import { decodeToJson, encodeStrict } from '../../../src/xds/proto';
import { TYPE } from '../../../src/xds/type-urls';

describe('encoded resource bytes', () => {
  it('are an exact-size copy of what the encoder returned, with the same content and version', () => {
    const json = { name: 'exitgate/acme/bot/egress', virtual_hosts: [{ name: 'a', domains: ['a.example.test'] }] };
    const direct = encodeStrict(TYPE.route, json);
    if (!direct.ok) throw new Error(direct.errors.join('; '));
    const enc = new EncodedResourceTable().encode(TYPE.route, json.name, json);
    if (!enc.ok) throw new Error(enc.errors.join('; '));
    const v = enc.value.value;
    expect(v.byteOffset).toBe(0);
    expect(v.buffer.byteLength).toBe(v.byteLength);
    expect(Buffer.from(v).equals(Buffer.from(direct.value))).toBe(true);
    expect(enc.value.hash).toBe(sha256(direct.value));
    expect((decodeToJson(TYPE.route, v) as { name: string }).name).toBe(json.name);
  });

  it('ownBytes copies a view into a larger buffer and keeps a buffer that is already its own', () => {
    const slab = Buffer.alloc(8192);
    slab.write('hello', 100);
    const view = slab.subarray(100, 105);
    const own = ownBytes(view);
    expect(own).not.toBe(view);
    expect(own.buffer.byteLength).toBe(5);
    expect(Buffer.from(own).toString()).toBe('hello');
    const exact = new Uint8Array([1, 2, 3]);
    expect(ownBytes(exact)).toBe(exact);
  });
});
