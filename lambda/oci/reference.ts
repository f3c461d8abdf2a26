/**
 * Image references as Docker and skopeo read them: `[registry/]repository[:tag][@digest]`, with
 * Docker Hub's short forms (`nginx` is `docker.io/library/nginx`) and host:port registries
 * (`127.0.0.1:5000/ferry-acme/api:1.0`).
 */

export interface ImageReference {
  /** host[:port]; Docker Hub is `docker.io`. */
  readonly registry: string;
  /** path in the registry, e.g. `library/nginx` or `ferry-acme/api`. */
  readonly repository: string;
  readonly tag?: string;
  /** `algorithm:hex`, e.g. `sha256:…`. */
  readonly digest?: string;
}

export const DOCKER_HUB = 'docker.io';

/** A reference that does not follow the grammar; the message quotes it and says which part is wrong. */
export class InvalidReferenceError extends Error {
  override readonly name = 'InvalidReferenceError';
  constructor(
    readonly reference: string,
    reason: string,
  ) {
    super(`invalid image reference "${reference}": ${reason}`);
  }
}

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const REGISTRY = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const KNOWN_DIGESTS: Record<string, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};
const MAX_NAME_LENGTH = 255;

/** True for a well-formed `algorithm:hex` digest (sha256 and sha512 checked for length too). */
export function isDigest(value: string): boolean {
  if (!DIGEST.test(value)) return false;
  const [algorithm, hex] = value.split(':', 2) as [string, string];
  const known = KNOWN_DIGESTS[algorithm];
  return known ? known.test(hex) : hex.length >= 32;
}

/** True for a well-formed tag. */
export function isTag(value: string): boolean {
  return TAG.test(value);
}

/**
 * Parses `[oci://|docker://][registry/]repository[:tag][@digest]`. A first path part with a dot,
 * a colon or an upper-case letter, or `localhost`, is the registry; otherwise the registry is
 * Docker Hub, where a one-part repository lives under `library/`.
 */
export function parseReference(input: string): ImageReference {
  const reference = input.trim();
  let rest = reference.replace(/^(?:oci|docker):\/\//, '');
  if (rest === '') throw new InvalidReferenceError(input, 'it is empty');

  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) {
      throw new InvalidReferenceError(input, `"${digest}" is not a digest (expected sha256:<64 hex digits>)`);
    }
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isTag(tag)) {
      throw new InvalidReferenceError(
        input,
        `"${tag}" is not a tag (1-128 letters, digits, "_", "." or "-", not starting with "." or "-")`,
      );
    }
  }

  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    if (/[.:A-Z]/.test(first) || first === 'localhost' || first.startsWith('[')) {
      registry = first;
      repository = rest.slice(slash + 1);
      if (!REGISTRY.test(registry))
        throw new InvalidReferenceError(input, `"${registry}" is not a registry host`);
    }
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  if (repository === '') throw new InvalidReferenceError(input, 'it names no repository');
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw new InvalidReferenceError(
        input,
        component === ''
          ? 'the repository has an empty path component'
          : `repository component "${component}" must be lower-case letters and digits, ` +
              'separated by ".", "_", "__" or "-"',
      );
    }
  }
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (repository.length > MAX_NAME_LENGTH) {
    throw new InvalidReferenceError(input, `the repository is longer than ${MAX_NAME_LENGTH} characters`);
  }
  return { registry, repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** `registry/repository[:tag][@digest]`, the full form (Docker Hub is named, `library/` kept). */
export function formatReference(reference: ImageReference): string {
  let text = `${reference.registry}/${reference.repository}`;
  if (reference.tag !== undefined) text += `:${reference.tag}`;
  if (reference.digest !== undefined) text += `@${reference.digest}`;
  return text;
}

/** What to ask the manifest endpoint for: the digest when there is one, else the tag, else `latest`. */
export function manifestReference(reference: ImageReference): string {
  return reference.digest ?? reference.tag ?? 'latest';
}
