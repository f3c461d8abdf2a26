import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HELM_CHART_LAYER, HELM_CONFIG } from '../../../lambda/oci/media-types';
import { helmIgnore, helmTag, packageHelmChart } from '../../../lambda/packaging/helm';
import { PackagingError, readTarGz } from '../../../lambda/packaging/tar';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function chart(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-helm-'));
  made.push(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

describe('packageHelmChart', () => {
  it('writes the metadata as Helm does (its field order, unknown and empty fields left out)', async () => {
    const dir = chart({
      'Chart.yaml': [
        'type: application',
        'appVersion: 1.10',
        'version: 0.3.0',
        'apiVersion: v2',
        'name: shop',
        'description: The shop',
        'deprecated: false',
        'keywords: []',
        'extra: ignored',
        'maintainers:',
        '  - email: ops@example.com',
        '    name: Ops',
        'annotations:',
        '  b: 2',
        '  a: one',
        '',
      ].join('\n'),
      'templates/deployment.yaml': 'kind: Deployment\n',
    });

    const packaged = await packageHelmChart(dir);

    expect(packaged.name).toBe('shop');
    expect(packaged.version).toBe('0.3.0');
    expect(packaged.configMediaType).toBe(HELM_CONFIG);
    expect(packaged.layerMediaType).toBe(HELM_CHART_LAYER);
    expect(packaged.configBytes.toString()).toBe(
      JSON.stringify({
        name: 'shop',
        version: '0.3.0',
        description: 'The shop',
        maintainers: [{ name: 'Ops', email: 'ops@example.com' }],
        apiVersion: 'v2',
        appVersion: '1.10',
        annotations: { a: 'one', b: '2' },
        type: 'application',
      }),
    );
    expect(packaged.annotations).toEqual({
      'org.opencontainers.image.title': 'shop',
      'org.opencontainers.image.version': '0.3.0',
      'org.opencontainers.image.description': 'The shop',
    });
  });

  it('packs the chart under <name>/ and honours .helmignore', async () => {
    const dir = chart({
      'Chart.yaml': 'apiVersion: v2\nname: shop\nversion: 1.0.0\n',
      '.helmignore': '# editor files\n*.swp\nci/\n/secrets.yaml\n',
      'values.yaml': 'a: 1\n',
      'secrets.yaml': 'password: x\n',
      'templates/deployment.yaml': 'kind: Deployment\n',
      'templates/deployment.yaml.swp': 'junk',
      'templates/.hidden': 'junk',
      'ci/test-values.yaml': 'a: 2\n',
    });

    const packaged = await packageHelmChart(dir);
    const entries = await readTarGz(packaged.layerBytes);

    expect(entries.map((entry) => entry.name)).toEqual([
      'shop/',
      'shop/.helmignore',
      'shop/Chart.yaml',
      'shop/templates/',
      'shop/templates/deployment.yaml',
      'shop/values.yaml',
    ]);
  });

  it('gives the same bytes when packaged twice', async () => {
    const files = { 'Chart.yaml': 'apiVersion: v2\nname: shop\nversion: 1.0.0\n', 'values.yaml': 'a: 1\n' };

    const first = await packageHelmChart(chart(files));
    const second = await packageHelmChart(chart(files));

    expect(second.layerBytes.equals(first.layerBytes)).toBe(true);
    expect(second.configBytes.equals(first.configBytes)).toBe(true);
  });

  it('says Chart.yaml is missing', async () => {
    const dir = chart({ 'values.yaml': 'a: 1\n' });

    const packaging = packageHelmChart(dir);

    await expect(packaging).rejects.toThrow(PackagingError);
    await expect(packaging).rejects.toThrow(`${join(dir, 'Chart.yaml')} is missing`);
  });

  it.each([
    ['apiVersion: v2\nversion: 1.0.0\n', 'has no name'],
    ['apiVersion: v2\nname: shop\n', 'has no version'],
    ['apiVersion: v2\nname: shop\nversion: one\n', 'version "one" is not a SemVer version'],
    ['name: [unclosed\n', 'is not valid YAML'],
    ['- a list\n', 'must be a YAML mapping'],
  ])('refuses Chart.yaml %j, saying what is wrong', async (content, problem) => {
    const dir = chart({ 'Chart.yaml': content });

    await expect(packageHelmChart(dir)).rejects.toThrow(`${join(dir, 'Chart.yaml')}`);
    await expect(packageHelmChart(dir)).rejects.toThrow(problem);
  });

  it('tags a version the way helm push does', () => {
    expect(helmTag('1.2.3+build.4')).toBe('1.2.3_build.4');
  });
});

describe('helmIgnore', () => {
  it('matches base names, whole paths, directories only, and lets the first matching rule decide', () => {
    const dir = chart({ '.helmignore': '!keep.tmp\n*.tmp\nbuild/\ndocs/*.md\n' });
    const ignored = helmIgnore(dir);

    expect(ignored('a/b/x.tmp', false)).toBe(true);
    expect(ignored('a/keep.tmp', false)).toBe(false);
    expect(ignored('build', true)).toBe(true);
    expect(ignored('build', false)).toBe(false);
    expect(ignored('docs/readme.md', false)).toBe(true);
    expect(ignored('docs/sub/readme.md', false)).toBe(false);
    expect(ignored('templates/.keep', false)).toBe(true);
  });
});
