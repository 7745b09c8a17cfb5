import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseRange } from '../../src/http/handlers/blobs.js';
import { paginate } from '../../src/http/pagination.js';
import { RegistryError } from '../../src/registry/errors.js';
import { parseDigest, validateName, validateTag } from '../../src/registry/names.js';

describe('names, tags and digests', () => {
  it('accepts names from the spec grammar and refuses the rest', () => {
    for (const ok of ['a', 'library/ubuntu', 'a-b/c__d/e.f', 'x0/y--z', 'a'.repeat(255)]) assert.equal(validateName(ok), ok);
    for (const bad of ['', 'A', '../x', 'a//b', '/a', 'a/', 'a..b', '-a', 'a_', 'a/.b', 'a'.repeat(256), 'a b']) {
      assert.throws(() => validateName(bad), (err: RegistryError) => err.code === 'NAME_INVALID', bad);
    }
  });

  it('checks tags', () => {
    assert.equal(validateTag('v1.0_rc-1'), 'v1.0_rc-1');
    assert.throws(() => validateTag('.bad'), /invalid tag/);
    assert.throws(() => validateTag('x'.repeat(129)), /invalid tag/);
  });

  it('parses verifiable digests only', () => {
    assert.equal(parseDigest(`sha256:${'a'.repeat(64)}`).hex, 'a'.repeat(64));
    assert.equal(parseDigest(`sha512:${'b'.repeat(128)}`).algorithm, 'sha512');
    for (const bad of ['sha256:abc', `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, 'plain', '']) {
      assert.throws(() => parseDigest(bad), (err: RegistryError) => err.code === 'DIGEST_INVALID', bad);
    }
  });

  it('parses byte ranges', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=50-500', 100), { start: 50, end: 99 });
    assert.equal(parseRange(undefined, 100), undefined);
    assert.equal(parseRange('items=0-1', 100), undefined);
    assert.equal(parseRange('bytes=0-1,3-4', 100), undefined); // several ranges: the whole blob
    for (const bad of ['bytes=100-', 'bytes=5-1', 'bytes=-0', 'bytes=-', 'bytes=x-y']) {
      assert.throws(() => parseRange(bad, 100), (err: RegistryError) => err.status === 416, bad);
    }
  });

  it('paginates', () => {
    const list = ['a', 'b', 'c', 'd'];
    assert.deepEqual(paginate(list, new URLSearchParams('')), { items: list });
    assert.deepEqual(paginate(list, new URLSearchParams('n=2')), { items: ['a', 'b'], next: 'n=2&last=b' });
    assert.deepEqual(paginate(list, new URLSearchParams('n=2&last=b')), { items: ['c', 'd'] });
    assert.deepEqual(paginate(list, new URLSearchParams('last=bb')), { items: ['c', 'd'] });
    assert.deepEqual(paginate(list, new URLSearchParams('n=0')), { items: [] });
    assert.throws(() => paginate(list, new URLSearchParams('n=x')), /whole number/);
  });
});
