// Tests never reach AWS: any client a test forgets to point at a stand-in fails on a closed port.
process.env.AWS_REGION ??= 'us-east-1';
process.env.AWS_ACCESS_KEY_ID = 'test';
process.env.AWS_SECRET_ACCESS_KEY = 'test';
process.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:9';
process.env.CDK_DISABLE_CLI_TELEMETRY = 'true';
process.env.POWERTOOLS_DEV = 'false';
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
