/** Reads a required environment variable; a missing one is a deployment mistake, said plainly. */
export function requireEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new Error(`environment variable ${name} is not set: the function was deployed without it`);
  }
  return value;
}
