import type { IncomingMessage, ServerResponse } from "node:http";

import { authenticate, type AuthFailure, type Principal } from "./auth.js";
import { checkScopes } from "./bearer.js";
import type { TokenClient } from "./client.js";

/** A request that passed the token check. */
export type AuthenticatedRequest<Request extends IncomingMessage = IncomingMessage> = Request & {
  /** The caller, set by the middleware before the handler runs. */
  principal: Principal;
};

/** Logger for failures to reach tokend; `console` fits. */
export interface WarnLogger {
  warn(message: string, ...details: unknown[]): void;
}

/** Options of requireToken and requireTokenMiddleware. */
export interface MiddlewareOptions {
  /** Scopes the token must all hold. Default: none. */
  requiredScopes?: readonly string[];
  /**
   * Receives one warning per second at most while tokend cannot be reached
   * or returns errors. Rejected tokens are normal traffic and are not
   * logged. Default: console.
   */
  logger?: WarnLogger;
}

/** Returns the principal that the middleware attached to the request. */
export function getPrincipal(request: IncomingMessage): Principal | undefined {
  return (request as Partial<AuthenticatedRequest>).principal;
}

/**
 * Wraps a handler of Node's `http` server so that it runs only for requests
 * whose `Authorization: Bearer <token>` header carries a token that tokend
 * reports as valid and holding every required scope. The handler finds the
 * caller in `request.principal`. When the handler throws or returns a
 * promise that rejects, the error is logged and the response is 500, or the
 * connection is closed when headers were already sent.
 *
 * Rejected requests get the responses of RFC 6750 section 3:
 * - no Authorization header: 401 with `WWW-Authenticate: Bearer`, without an
 *   error code, as section 3.1 recommends for requests without credentials;
 * - more than one Authorization header: 400, error="invalid_request";
 * - a header that is not a Bearer credential, or a token that tokend reports
 *   as malformed, unknown, expired or revoked: 401, error="invalid_token";
 * - a valid token without a required scope: 403, error="insufficient_scope"
 *   with the required scopes in scope="...".
 * When tokend cannot be reached, returns an error or returns a response this
 * package does not understand, the request gets 503 and the handler does
 * not run.
 *
 * @throws TypeError when a required scope does not match tokend's scope
 * syntax, since no token could ever hold it.
 */
export function requireToken<Request extends IncomingMessage, Response extends ServerResponse>(
  client: TokenClient,
  handler: (request: AuthenticatedRequest<Request>, response: Response) => unknown,
  options: MiddlewareOptions = {},
): (request: Request, response: Response) => void {
  const middleware = requireTokenMiddleware<Request, Response>(client, options);
  return (request, response) => {
    middleware(request, response, (error?: unknown) => {
      if (error !== undefined) {
        respondServerError(response, error, options.logger ?? console);
        return;
      }
      Promise.resolve()
        .then(() => handler(request as AuthenticatedRequest<Request>, response))
        .catch((handlerError: unknown) => respondServerError(response, handlerError, options.logger ?? console));
    });
  };
}

/**
 * Returns Express-style middleware `(request, response, next)` with the
 * rules of requireToken. It calls `next()` only for an authenticated
 * request, with `request.principal` set, and sends the response for every
 * rejected request itself, 503 included, so an error handler cannot let it
 * through.
 */
export function requireTokenMiddleware<Request extends IncomingMessage, Response extends ServerResponse>(
  client: TokenClient,
  options: MiddlewareOptions = {},
): (request: Request, response: Response, next: (error?: unknown) => void) => void {
  const requiredScopes = [...(options.requiredScopes ?? [])];
  checkScopes(requiredScopes);
  const logger = options.logger ?? console;
  const limiter = new LogLimiter(1_000);

  return (request, response, next) => {
    authenticate(client, authorizationValues(request), requiredScopes).then(
      (outcome) => {
        if (outcome.failure !== undefined) {
          if (outcome.failure.kind === "unavailable") {
            limiter.warn(logger, request, outcome.failure);
          }
          respondFailure(response, outcome.failure, requiredScopes);
          return;
        }
        (request as AuthenticatedRequest<Request>).principal = outcome.principal;
        next();
      },
      (error: unknown) => {
        // authenticate turns every expected failure into an outcome, so this
        // is a bug; fail closed all the same.
        limiter.warn(logger, request, { kind: "unavailable", description: "token check failed", cause: error });
        respondFailure(response, { kind: "unavailable", description: "token validation is unavailable" }, requiredScopes);
      },
    );
  };
}

/**
 * Returns every Authorization value of the request. Node joins repeated
 * Authorization headers into `headers.authorization`, so the raw headers
 * are read to see each one.
 */
function authorizationValues(request: IncomingMessage): string[] {
  const values: string[] = [];
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() === "authorization") {
      values.push(raw[i + 1] ?? "");
    }
  }
  return values;
}

function respondFailure(response: ServerResponse, failure: AuthFailure, requiredScopes: readonly string[]): void {
  let status: number;
  switch (failure.kind) {
    case "missing":
      status = 401;
      response.setHeader("WWW-Authenticate", "Bearer");
      break;
    case "invalid_request":
      status = 400;
      response.setHeader("WWW-Authenticate", bearerChallenge("invalid_request", failure.description));
      break;
    case "invalid_token":
      status = 401;
      response.setHeader("WWW-Authenticate", bearerChallenge("invalid_token", failure.description));
      break;
    case "insufficient_scope":
      status = 403;
      response.setHeader("WWW-Authenticate", bearerChallenge("insufficient_scope", failure.description, requiredScopes));
      break;
    case "unavailable":
      status = 503;
      break;
  }
  response.statusCode = status;
  response.setHeader("Content-Type", "text/plain; charset=utf-8");
  response.end(`${failure.description}\n`);
}

/**
 * Formats a WWW-Authenticate value of RFC 6750 section 3. The descriptions
 * come from this package and the scopes passed checkScopes, so none
 * contains a quote or a backslash.
 */
function bearerChallenge(code: string, description: string, scopes: readonly string[] = []): string {
  let challenge = `Bearer error="${code}", error_description="${description}"`;
  if (scopes.length > 0) {
    challenge += `, scope="${scopes.join(" ")}"`;
  }
  return challenge;
}

function respondServerError(response: ServerResponse, error: unknown, logger: WarnLogger): void {
  logger.warn("tokend: request handler failed", error);
  if (response.headersSent) {
    response.destroy();
    return;
  }
  response.statusCode = 500;
  response.setHeader("Content-Type", "text/plain; charset=utf-8");
  response.end("internal server error\n");
}

/**
 * Lets one warning through per interval and counts the rest, so an outage
 * of tokend does not write one line per request.
 */
class LogLimiter {
  private last = 0;
  private suppressed = 0;

  constructor(private readonly intervalMs: number) {}

  warn(logger: WarnLogger, request: IncomingMessage, failure: AuthFailure): void {
    const now = Date.now();
    if (this.last !== 0 && now - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    logger.warn("tokend: token validation failed, rejecting request", {
      method: request.method,
      url: request.url,
      error: failure.cause,
      suppressedSinceLast: this.suppressed,
    });
    this.last = now;
    this.suppressed = 0;
  }
}
