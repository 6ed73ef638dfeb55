import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type CallOptions, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { SecureClientSessionOptions } from "node:http2";
import { isIP } from "node:net";

import {
  TokenService,
  type GenerateRequestSchema,
  type GenerateResponse,
  type ListRequestSchema,
  type ListResponse,
  type RevokeResponse,
  type ValidateResponse,
} from "./gen/tokens/v1/token_service_pb.js";

/** Timeout of each call in milliseconds unless the call sets its own. */
export const DEFAULT_TIMEOUT_MS = 5_000;

/** Options of createTokenClient. */
export interface TokenClientOptions {
  /**
   * URL of the tokend server: `https://host:port` for TLS, or
   * `http://127.0.0.1:port` for plaintext. Plaintext is accepted only for
   * loopback hosts (localhost, 127.0.0.0/8, ::1), where the traffic does not
   * leave the host.
   */
  baseUrl: string;
  /**
   * Token sent as `authorization: Bearer <token>` on every call. A service
   * that only checks incoming requests needs a token with the
   * tokens:validate scope.
   */
  token: string;
  /** Timeout of each call in milliseconds. Default: DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
  /**
   * TLS options for `http2.connect`, for example `ca` for a private CA or
   * `cert` and `key` for mutual TLS.
   */
  tlsOptions?: SecureClientSessionOptions;
}

/** Client of tokend's TokenService with the caller's token on every call. */
export interface TokenClient {
  /** Creates a token. The secret in the response is returned only once. */
  generate(request: MessageInitShape<typeof GenerateRequestSchema>, options?: CallOptions): Promise<GenerateResponse>;
  /** Returns one page of tokens, newest first. */
  list(request?: MessageInitShape<typeof ListRequestSchema>, options?: CallOptions): Promise<ListResponse>;
  /** Revokes the token with the given id. Revoking a revoked token succeeds. */
  revoke(id: string, options?: CallOptions): Promise<RevokeResponse>;
  /**
   * Checks with tokend whether `token` is valid and has every required
   * scope. The token may be bare or a whole "Bearer <token>" value. A bad
   * token is reported in the response's `result`. A rejected promise means
   * that the check could not be made, so the token must be treated as not
   * valid.
   */
  validate(token: string, requiredScopes?: readonly string[], options?: CallOptions): Promise<ValidateResponse>;
  /** The generated Connect client, sharing the connection and the token. */
  readonly service: Client<typeof TokenService>;
  /** Closes the HTTP/2 connection. Calls in progress fail. */
  close(): void;
}

/** Creates a TokenClient. It connects on the first call. */
export function createTokenClient(options: TokenClientOptions): TokenClient {
  const url = checkBaseUrl(options.baseUrl);
  checkCallerToken(options.token);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`invalid timeoutMs ${timeoutMs}: must be a positive number of milliseconds`);
  }

  const authorization = `Bearer ${options.token}`;
  const attachToken: Interceptor = (next) => (request) => {
    request.header.set("authorization", authorization);
    return next(request);
  };

  // An own session manager lets close() end the connection.
  const sessionManager = new Http2SessionManager(url, {}, options.tlsOptions);
  const transport = createGrpcTransport({
    baseUrl: url.toString(),
    interceptors: [attachToken],
    defaultTimeoutMs: timeoutMs,
    sessionManager,
  });
  const service = createClient(TokenService, transport);

  return {
    service,
    generate: (request, callOptions) => service.generate(request, callOptions),
    list: (request = {}, callOptions) => service.list(request, callOptions),
    revoke: (id, callOptions) => service.revoke({ id }, callOptions),
    validate: (token, requiredScopes = [], callOptions) =>
      service.validate({ token, requiredScopes: [...requiredScopes] }, callOptions),
    close: () => sessionManager.abort(),
  };
}

function checkBaseUrl(baseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`invalid baseUrl ${JSON.stringify(baseUrl)}: expected https://host:port or http://127.0.0.1:port`);
  }
  if (url.protocol === "https:") {
    return url;
  }
  if (url.protocol !== "http:") {
    throw new TypeError(`invalid baseUrl ${JSON.stringify(baseUrl)}: the scheme must be https: or http:`);
  }
  if (!isLoopbackHost(url.hostname)) {
    throw new TypeError(
      `plaintext baseUrl ${JSON.stringify(baseUrl)} rejected: http: is allowed only for localhost, 127.0.0.0/8 or [::1]; use https: for other hosts`,
    );
  }
  return url;
}

/** Reports whether a URL hostname is localhost or a loopback IP address. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost") {
    return true;
  }
  if (isIP(host) === 4) {
    return host.startsWith("127.");
  }
  return host === "::1" || host === "0:0:0:0:0:0:0:1";
}

function checkCallerToken(token: string): void {
  if (typeof token !== "string" || token === "") {
    throw new TypeError("missing token: pass the token that the calls need (tokens:validate for validate)");
  }
  if (token.toLowerCase().startsWith("bearer ")) {
    throw new TypeError('invalid token: pass the bare token, without the "Bearer " prefix');
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new TypeError("invalid token: it contains whitespace, control or non-ASCII characters");
  }
}
