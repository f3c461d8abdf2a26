import {
  formatReference,
  InvalidReferenceError,
  isDigest,
  manifestReference,
  parseReference,
} from '../../../lambda/oci/reference';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it.each([
    ['nginx', { registry: 'docker.io', repository: 'library/nginx' }],
    ['nginx:1.27', { registry: 'docker.io', repository: 'library/nginx', tag: '1.27' }],
    ['docker.io/nginx:1.27', { registry: 'docker.io', repository: 'library/nginx', tag: '1.27' }],
    ['index.docker.io/acme/web', { registry: 'docker.io', repository: 'acme/web' }],
    ['acme/web:v2', { registry: 'docker.io', repository: 'acme/web', tag: 'v2' }],
    ['127.0.0.1:5000/ferry-acme/api', { registry: '127.0.0.1:5000', repository: 'ferry-acme/api' }],
    [
      '127.0.0.1:5000/ferry-acme/api:1.0',
      { registry: '127.0.0.1:5000', repository: 'ferry-acme/api', tag: '1.0' },
    ],
    ['localhost/chart', { registry: 'localhost', repository: 'chart' }],
    ['localhost:5000/a/b/c:x_1', { registry: 'localhost:5000', repository: 'a/b/c', tag: 'x_1' }],
    ['[::1]:5000/repo:tag', { registry: '[::1]:5000', repository: 'repo', tag: 'tag' }],
    [
      '123456789012.dkr.ecr.eu-west-1.amazonaws.com/ferry-acme/api:v1',
      { registry: '123456789012.dkr.ecr.eu-west-1.amazonaws.com', repository: 'ferry-acme/api', tag: 'v1' },
    ],
    [`ghcr.io/acme/web@${DIGEST}`, { registry: 'ghcr.io', repository: 'acme/web', digest: DIGEST }],
    [
      `ghcr.io/acme/web:1.0@${DIGEST}`,
      { registry: 'ghcr.io', repository: 'acme/web', tag: '1.0', digest: DIGEST },
    ],
    [
      'oci://127.0.0.1:5000/charts/demo:0.1.0',
      { registry: '127.0.0.1:5000', repository: 'charts/demo', tag: '0.1.0' },
    ],
    ['docker://quay.io/a__b/c-d.e', { registry: 'quay.io', repository: 'a__b/c-d.e' }],
  ])('reads %s', (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  it.each([
    ['', /empty/],
    ['nginx:', /"" is not a tag/],
    ['nginx:-x', /"-x" is not a tag/],
    ['nginx@sha256:abc', /not a digest/],
    ['Nginx', /"Nginx" must be lower-case/],
    ['acme//web', /empty path component/],
    ['127.0.0.1:5000/', /names no repository/],
    ['ghcr.io/acme/web-', /"web-" must be lower-case/],
    ['my_host.example:port/x', /"my_host.example:port" is not a registry host/],
  ])('refuses %j, saying why', (input, reason) => {
    expect(() => parseReference(input)).toThrow(InvalidReferenceError);
    expect(() => parseReference(input)).toThrow(reason);
    expect(() => parseReference(input)).toThrow(`"${input}"`);
  });

  it('formats the full form back, which parses to the same reference', () => {
    for (const input of ['nginx:1.27', `127.0.0.1:5000/ferry/api:v1@${DIGEST}`, 'ghcr.io/acme/web']) {
      const parsed = parseReference(input);
      expect(parseReference(formatReference(parsed))).toEqual(parsed);
    }
    expect(formatReference(parseReference('nginx:1.27'))).toBe('docker.io/library/nginx:1.27');
  });

  it('asks the registry for the digest, else the tag, else latest', () => {
    expect(manifestReference(parseReference(`ghcr.io/a/b:1@${DIGEST}`))).toBe(DIGEST);
    expect(manifestReference(parseReference('ghcr.io/a/b:1'))).toBe('1');
    expect(manifestReference(parseReference('ghcr.io/a/b'))).toBe('latest');
  });

  it('checks digest lengths for the algorithms it knows', () => {
    expect(isDigest(DIGEST)).toBe(true);
    expect(isDigest(`sha256:${'a'.repeat(63)}`)).toBe(false);
    expect(isDigest(`sha512:${'b'.repeat(128)}`)).toBe(true);
    expect(isDigest('latest')).toBe(false);
  });
});
