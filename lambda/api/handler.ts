import { requireEnv } from '../shared/env';
import { type ApiHandler, createApiHandler } from './app';

/** Lambda entry point for every /v1 route; dependencies come from the function's environment. */
export const handler: ApiHandler = createApiHandler({ tenant: requireEnv('FERRY_TENANT') });
