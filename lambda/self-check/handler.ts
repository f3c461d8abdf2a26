import { documentClient } from '../shared/dynamo';
import { requireEnv } from '../shared/env';
import { logger } from '../shared/logger';
import { checkStateTable, type StateTableCheck } from './self-check';

const client = documentClient();

export interface SelfCheckEvent {
  readonly check: 'state-table';
  readonly runId: string;
}

/** Step Functions task of the self-check workflow. */
export async function handler(event: SelfCheckEvent): Promise<StateTableCheck> {
  if (event?.check !== 'state-table' || typeof event.runId !== 'string' || event.runId === '') {
    throw new Error(`self-check: expected {"check":"state-table","runId":"…"}, got ${JSON.stringify(event)}`);
  }
  const result = await checkStateTable(client, requireEnv('STATE_TABLE'), event.runId);
  logger.info('self-check passed', { ...result });
  return result;
}
