/**
 * Maximum length of a token that tokend accepts. Longer values are
 * MALFORMED there, so they are rejected here without a call.
 */
export const MAX_TOKEN_LENGTH = 255;

/** The b64token syntax of RFC 6750 section 2.1. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** tokend's scope syntax. A required scope outside it can never be granted. */
const SCOPE = /^[a-z][a-z0-9_.:-]{0,63}$/;

/** Reason an Authorization value is not a usable Bearer credential. */
export class BearerSyntaxError extends Error {
  override name = "BearerSyntaxError";
}

/**
 * Returns the token of an Authorization value in the form RFC 6750 section
 * 2.1 defines: the scheme "Bearer" in any letter case, one or more spaces,
 * then the token. Surrounding spaces and tabs are ignored.
 *
 * @throws BearerSyntaxError when the value is not such a credential.
 */
export function parseBearer(value: string): string {
  const trimmed = value.replace(/^[ \t]+|[ \t]+$/g, "");
  const space = trimmed.indexOf(" ");
  const scheme = space === -1 ? trimmed : trimmed.slice(0, space);
  if (scheme.toLowerCase() !== "bearer") {
    throw new BearerSyntaxError("the authorization scheme is not Bearer");
  }

  const token = space === -1 ? "" : trimmed.slice(space).replace(/^ +/, "");
  if (token === "") {
    throw new BearerSyntaxError("the Bearer credential has no token");
  }
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new BearerSyntaxError(`the token is longer than ${MAX_TOKEN_LENGTH} characters`);
  }
  if (!B64TOKEN.test(token)) {
    throw new BearerSyntaxError("the token contains characters outside the RFC 6750 b64token syntax");
  }
  return token;
}

/**
 * Throws on a required scope that no token can hold, because every request
 * would then be rejected.
 */
export function checkScopes(scopes: readonly string[]): void {
  for (const scope of scopes) {
    if (!SCOPE.test(scope)) {
      throw new TypeError(`invalid required scope ${JSON.stringify(scope)}: a scope matches [a-z][a-z0-9_.:-]{0,63}`);
    }
  }
}
