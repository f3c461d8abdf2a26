/** The install access template, inlined into the API function at bundle time (lib/tenant-stack.ts). */
declare const FERRY_ACCESS_TEMPLATE: string;
