/**
 * A loopback HTTP proxy in front of one registry that misbehaves on demand: it answers a status
 * instead of the registry, cuts a request or a response mid-stream, or flips a byte of what the
 * registry served. It records every request (method, path, body bytes it forwarded) so a test can
 * count what a client sent. The Host header is passed through, so the upload Locations the
 * registry hands out point back at the proxy.
 */

import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  /** Answer this status (and headers) instead of forwarding. */
  | { readonly kind: 'status'; readonly status: number; readonly headers?: Record<string, string> }
  /** Forward the request body until `afterBytes` bytes have passed, then drop both connections. */
  | { readonly kind: 'cut-request'; readonly afterBytes: number }
  /** Forward the response body until `afterBytes` bytes have passed, then drop the connection. */
  | { readonly kind: 'cut-response'; readonly afterBytes: number }
  /** Forward the response with one byte of its body changed (same length). */
  | { readonly kind: 'tamper' }
  /** Drop the connection without answering. */
  | { readonly kind: 'reset' }
  /** Answer 307 to the same path and query on `to` (host:port), as registries send downloads to storage. */
  | { readonly kind: 'redirect'; readonly to: string };

export interface FaultRule {
  /** Only requests with this method. @default any */
  readonly method?: string;
  /** Only requests whose path and query match. @default any */
  readonly path?: RegExp;
  /** Let this many matching requests through untouched first. @default 0 */
  readonly skip?: number;
  /** How many matching requests the fault hits (Infinity: every one). @default 1 */
  readonly times?: number;
  readonly fault: Fault;
}

export interface ProxiedRequest {
  readonly method: string;
  /** Path and query, as the client sent them. */
  readonly url: string;
  /** Request body bytes forwarded to the registry. */
  readonly bodyBytes: number;
  /** The request carried an Authorization header. */
  readonly authorization: boolean;
  /** The status answered (the registry's or the fault's); 0 when the connection was dropped. */
  status: number;
  /** The fault applied to this request, if any. */
  readonly fault?: Fault['kind'];
}

export interface FaultProxy {
  /** host:port of the proxy, as references name it. */
  readonly host: string;
  readonly url: string;
  /** Every request so far, in arrival order. */
  readonly requests: ProxiedRequest[];
  /** Adds a rule; the first rule that matches and has hits left applies. */
  addFault(rule: FaultRule): void;
  /** Removes every rule (the proxy forwards faithfully from now on). */
  clearFaults(): void;
  stop(): Promise<void>;
}

interface ActiveRule {
  readonly rule: FaultRule;
  skipLeft: number;
  hitsLeft: number;
}

/** Starts a proxy on a free loopback port forwarding to `target` (`host:port`). */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const [targetHost, targetPort] = splitHost(target);
  const agent = new Agent({ keepAlive: true });
  const rules: ActiveRule[] = [];
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();

  const pick = (incoming: IncomingMessage): Fault | undefined => {
    for (const active of rules) {
      const { rule } = active;
      if (rule.method !== undefined && rule.method !== incoming.method) continue;
      if (rule.path !== undefined && !rule.path.test(incoming.url ?? '')) continue;
      if (active.skipLeft > 0) {
        active.skipLeft--;
        return undefined;
      }
      if (active.hitsLeft <= 0) continue;
      active.hitsLeft--;
      return rule.fault;
    }
    return undefined;
  };

  const handle = (incoming: IncomingMessage, outgoing: ServerResponse) => {
    const fault = pick(incoming);
    let bodyBytes = 0;
    const record: ProxiedRequest = {
      method: incoming.method ?? 'GET',
      url: incoming.url ?? '/',
      get bodyBytes() {
        return bodyBytes;
      },
      authorization: incoming.headers.authorization !== undefined,
      status: 0,
      ...(fault && { fault: fault.kind }),
    };
    requests.push(record);
    const drop = () => {
      incoming.socket.destroy();
    };

    if (fault?.kind === 'reset') {
      incoming.resume();
      drop();
      return;
    }
    if (fault?.kind === 'redirect') {
      incoming.resume();
      record.status = 307;
      outgoing.writeHead(307, {
        location: `http://${fault.to}${incoming.url ?? '/'}`,
        'content-length': '0',
      });
      outgoing.end();
      return;
    }
    if (fault?.kind === 'status') {
      incoming.resume();
      incoming.once('end', () => {
        record.status = fault.status;
        outgoing.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
        outgoing.end(JSON.stringify({ errors: [{ code: 'FAULT', message: `injected ${fault.status}` }] }));
      });
      return;
    }

    const upstream = request(
      {
        host: targetHost,
        port: targetPort,
        method: incoming.method,
        path: incoming.url,
        headers: incoming.headers,
        agent,
      },
      (answer) => {
        record.status = answer.statusCode ?? 0;
        outgoing.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.rawHeaders);
        let sent = 0;
        let tampered = false;
        answer.on('data', (chunk: Buffer) => {
          if (fault?.kind === 'cut-response' && sent + chunk.length > fault.afterBytes) {
            outgoing.write(chunk.subarray(0, Math.max(0, fault.afterBytes - sent)));
            answer.destroy();
            drop();
            return;
          }
          if (fault?.kind === 'tamper' && !tampered && chunk.length > 0) {
            const changed = Buffer.from(chunk);
            changed[0] = (changed[0]! + 1) % 256;
            chunk = changed;
            tampered = true;
          }
          sent += chunk.length;
          if (!outgoing.write(chunk)) {
            answer.pause();
            outgoing.once('drain', () => answer.resume());
          }
        });
        answer.on('end', () => outgoing.end());
        answer.on('error', drop);
      },
    );
    upstream.on('error', () => {
      record.status = 0;
      if (!outgoing.headersSent) {
        outgoing.writeHead(502);
        outgoing.end();
      } else drop();
    });
    incoming.on('data', (chunk: Buffer) => {
      if (fault?.kind === 'cut-request' && bodyBytes + chunk.length > fault.afterBytes) {
        const rest = Math.max(0, fault.afterBytes - bodyBytes);
        bodyBytes += rest;
        upstream.write(chunk.subarray(0, rest));
        upstream.destroy();
        drop();
        return;
      }
      bodyBytes += chunk.length;
      if (!upstream.write(chunk)) {
        incoming.pause();
        upstream.once('drain', () => incoming.resume());
      }
    });
    incoming.on('end', () => upstream.end());
    incoming.on('error', () => upstream.destroy());
  };

  const server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;
  return {
    host,
    url: `http://${host}`,
    requests,
    addFault(rule) {
      rules.push({ rule, skipLeft: rule.skip ?? 0, hitsLeft: rule.times ?? 1 });
    },
    clearFaults() {
      rules.length = 0;
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

function splitHost(target: string): [string, number] {
  const colon = target.lastIndexOf(':');
  if (colon === -1) throw new Error(`fault proxy target "${target}" must be host:port`);
  return [target.slice(0, colon), Number(target.slice(colon + 1))];
}
