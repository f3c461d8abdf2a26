/**
 * Domain errors: what went wrong in words a caller can act on. The API maps each kind to one
 * HTTP status; the CLI and local mode print them as they are.
 */

export interface Problem {
  /** Where in the input: a dotted path such as `body.inputs[2].name` or `path.appId`. */
  readonly path: string;
  readonly message: string;
}

export abstract class DomainError extends Error {
  abstract readonly code: string;
  constructor(
    message: string,
    readonly problems: readonly Problem[] = [],
  ) {
    super(message);
  }
}

/** The input is malformed or refers to something that does not exist; nothing was written. */
export class ValidationError extends DomainError {
  override readonly name = 'ValidationError';
  readonly code = 'ValidationFailed';
}

export class NotFoundError extends DomainError {
  override readonly name = 'NotFoundError';
  readonly code = 'NotFound';
}

/** The request conflicts with the current state (a duplicate name, installs still present). */
export class ConflictError extends DomainError {
  override readonly name = 'ConflictError';
  constructor(
    readonly code: string,
    message: string,
    problems: readonly Problem[] = [],
  ) {
    super(message, problems);
  }
}

/** If-Match named a version that is no longer current. */
export class VersionConflictError extends DomainError {
  override readonly name = 'VersionConflictError';
  readonly code = 'VersionConflict';
}

/** An Idempotency-Key was used before with a different request. */
export class IdempotencyKeyReusedError extends DomainError {
  override readonly name = 'IdempotencyKeyReusedError';
  readonly code = 'IdempotencyKeyReused';
}
