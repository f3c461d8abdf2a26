/**
 * The alphabets of names callers choose. Resource names (apps, components) are DNS-label-like so
 * they can name repositories, releases and stacks in any account; input names are identifiers so
 * they can become Terraform variables and environment variables.
 */

/** Apps and components: 1-63 of a-z, 0-9 and single hyphens, starting with a letter, not ending with a hyphen. */
export const RESOURCE_NAME = /^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,62}$/;
export const RESOURCE_NAME_RULE =
  '1-63 characters of a-z, 0-9 and single hyphens, starting with a letter and not ending with a hyphen';

/** Install inputs: 1-64 of letters, digits and underscores, not starting with a digit. */
export const INPUT_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const INPUT_NAME_RULE = '1-64 letters, digits and underscores, not starting with a digit';

/** An AWS account id. */
export const ACCOUNT_ID = /^\d{12}$/;
