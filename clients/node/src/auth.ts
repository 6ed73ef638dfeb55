import { timestampDate } from "@bufbuild/protobuf/wkt";

import { BearerSyntaxError, parseBearer } from "./bearer.js";
import type { TokenClient } from "./client.js";
import { ValidateResult, type Token } from "./gen/tokens/v1/token_service_pb.js";

/** The authenticated caller of a request: the token's owner and scopes. */
export interface Principal {
  /** The token's UUIDv7 id. */
  tokenId: string;
  /** The owner the token belongs to, for example a user id. */
  owner: string;
  /** The token's name or purpose. */
  name: string;
  /** The scopes the token grants, sorted. */
  scopes: string[];
  /** The token's expiry time, or undefined when it never expires. */
  expiresAt: Date | undefined;
}

/** Reason a request was not authenticated. */
export type FailureKind =
  /** The request carries no credentials. */
  | "missing"
  /** The request carries more than one credential. */
  | "invalid_request"
  /** The credential is malformed, unknown, expired or revoked. */
  | "invalid_token"
  /** The token is valid but lacks a required scope. */
  | "insufficient_scope"
  /** tokend returned an error or could not be reached. */
  | "unavailable";

/**
 * A rejected request. `description` is safe to send to the caller: it
 * never contains the token or internal errors; `cause` may.
 */
export interface AuthFailure {
  kind: FailureKind;
  description: string;
  cause?: unknown;
}

export type AuthOutcome = { principal: Principal; failure?: undefined } | { principal?: undefined; failure: AuthFailure };

const UNAVAILABLE = "token validation is unavailable";

/**
 * Checks the Authorization values of one request against tokend. It never
 * rejects: every failure, including tokend errors, is an outcome.
 */
export async function authenticate(
  client: TokenClient,
  values: readonly string[],
  requiredScopes: readonly string[],
): Promise<AuthOutcome> {
  if (values.length === 0) {
    return { failure: { kind: "missing", description: "the request has no bearer token" } };
  }
  if (values.length > 1) {
    return { failure: { kind: "invalid_request", description: "the request has more than one Authorization value" } };
  }

  let token: string;
  try {
    token = parseBearer(values[0] ?? "");
  } catch (error) {
    if (error instanceof BearerSyntaxError) {
      return { failure: { kind: "invalid_token", description: error.message } };
    }
    throw error;
  }

  let response;
  try {
    response = await client.validate(token, requiredScopes);
  } catch (error) {
    return { failure: { kind: "unavailable", description: UNAVAILABLE, cause: error } };
  }

  const { valid, result, token: metadata } = response;
  if (valid && result === ValidateResult.VALID && metadata !== undefined) {
    return { principal: principalFromToken(metadata) };
  }
  switch (result) {
    case ValidateResult.INSUFFICIENT_SCOPE:
      return {
        failure: { kind: "insufficient_scope", description: `the token lacks a required scope: ${requiredScopes.join(" ")}` },
      };
    case ValidateResult.MALFORMED:
      return { failure: { kind: "invalid_token", description: "the token is malformed" } };
    case ValidateResult.NOT_FOUND:
      return { failure: { kind: "invalid_token", description: "the token is not known" } };
    case ValidateResult.EXPIRED:
      return { failure: { kind: "invalid_token", description: "the token expired" } };
    case ValidateResult.REVOKED:
      return { failure: { kind: "invalid_token", description: "the token was revoked" } };
    default:
      // A response this client does not understand, such as a result added
      // in a later tokend version, is not taken as valid.
      return {
        failure: {
          kind: "unavailable",
          description: UNAVAILABLE,
          cause: new Error(`unexpected Validate response: valid=${valid} result=${result} token set=${metadata !== undefined}`),
        },
      };
  }
}

function principalFromToken(token: Token): Principal {
  return {
    tokenId: token.id,
    owner: token.owner,
    name: token.name,
    scopes: [...token.scopes],
    expiresAt: token.expiresAt === undefined ? undefined : timestampDate(token.expiresAt),
  };
}
