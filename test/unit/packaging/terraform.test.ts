import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  TERRAFORM_CONFIG,
  TERRAFORM_MODULE_ARTIFACT,
  TERRAFORM_MODULE_LAYER,
} from '../../../lambda/oci/media-types';
import { readTarGz } from '../../../lambda/packaging/tar';
import { packageTerraformModule, scanHcl } from '../../../lambda/packaging/terraform';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function moduleDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-tf-'));
  made.push(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const MAIN = `
variable "region" {
  type = string
}
variable "db_password" { sensitive = true }
# variable "commented_out" {}
/* output "also_commented" {} */
resource "aws_s3_bucket" "b" {}
output "bucket" {
  value = aws_s3_bucket.b.id
}
`;

describe('packageTerraformModule', () => {
  it('lists the files, variables and outputs in the config and packs the module at the root', async () => {
    const dir = moduleDir({
      'main.tf': MAIN,
      'outputs.tf.json': JSON.stringify({ output: { arn: { value: 'aws_s3_bucket.b.arn' } } }),
      'modules/child/main.tf': 'variable "inner" {}\n',
      'terraform.tfstate': '{"secret":"x"}',
      '.terraform/providers/aws': 'binary',
    });

    const packaged = await packageTerraformModule(dir);
    const entries = await readTarGz(packaged.layerBytes);

    expect(packaged.artifactType).toBe(TERRAFORM_MODULE_ARTIFACT);
    expect(packaged.configMediaType).toBe(TERRAFORM_CONFIG);
    expect(packaged.layerMediaType).toBe(TERRAFORM_MODULE_LAYER);
    expect(JSON.parse(packaged.configBytes.toString())).toEqual({
      schemaVersion: 1,
      files: ['main.tf', 'modules/child/main.tf', 'outputs.tf.json'],
      variables: ['db_password', 'region'],
      outputs: ['arn', 'bucket'],
    });
    expect(entries.map((entry) => entry.name)).toEqual([
      'main.tf',
      'modules/',
      'modules/child/',
      'modules/child/main.tf',
      'outputs.tf.json',
    ]);
  });

  it('refuses a directory with no *.tf file', async () => {
    const dir = moduleDir({ 'README.md': '# not a module\n', 'sub/main.tf': '' });

    await expect(packageTerraformModule(dir)).rejects.toThrow(`${dir} has no *.tf file`);
  });

  it('gives the same bytes when packaged twice', async () => {
    const first = await packageTerraformModule(moduleDir({ 'main.tf': MAIN }));
    const second = await packageTerraformModule(moduleDir({ 'main.tf': MAIN }));

    expect(second.layerBytes.equals(first.layerBytes)).toBe(true);
    expect(second.configBytes.equals(first.configBytes)).toBe(true);
  });
});

describe('scanHcl', () => {
  it('finds declared variables and outputs and skips comments', () => {
    expect(scanHcl(MAIN)).toEqual({ variables: ['region', 'db_password'], outputs: ['bucket'] });
  });
});
