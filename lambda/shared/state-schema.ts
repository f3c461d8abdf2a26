/**
 * The key schema of the tenant's single state table. The CDK construct, the local stand-in and the
 * domain code all read it from here, so the table that deploys is the table tests run against.
 * The access patterns that use these keys are written down in docs/state.md.
 */
export const STATE_TABLE_KEYS = {
  partitionKey: 'pk',
  sortKey: 'sk',
} as const;

/** Global secondary indexes: name and key attributes. All project every attribute. */
export const STATE_TABLE_INDEXES = [
  { indexName: 'gsi1', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
] as const;

/** Items with this attribute (epoch seconds) expire: idempotency records, probe items. */
export const STATE_TABLE_TTL_ATTRIBUTE = 'expiresAt';
