package tokend

import (
	"net/http"
	"slices"
	"strings"
)

// Middleware returns a handler that admits a request only when its
// `Authorization: Bearer <token>` header carries a token that tokend
// reports as valid and holding every scope in requiredScopes. The handler
// reads the caller with PrincipalFromContext(r.Context()).
//
// Rejected requests get the responses of RFC 6750 section 3:
//   - no Authorization header: 401 with `WWW-Authenticate: Bearer`, without
//     an error code, as section 3.1 recommends for requests that carry no
//     credentials;
//   - more than one Authorization header: 400 with error="invalid_request";
//   - a header that is not a Bearer credential, or a token that tokend
//     reports as malformed, unknown, expired or revoked: 401 with
//     error="invalid_token";
//   - a valid token without a required scope: 403 with
//     error="insufficient_scope" and the required scopes in scope="...".
//
// When tokend cannot be reached, returns an error or returns a response
// this package does not understand, the request gets 503 and never reaches
// next.
//
// Middleware panics if a required scope does not match tokend's scope
// syntax, since no token could ever hold it.
func (c *Client) Middleware(next http.Handler, requiredScopes ...string) http.Handler {
	mustCheckScopes(requiredScopes)
	scopes := slices.Clone(requiredScopes)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal, failure := c.authenticate(r.Context(), r.Header.Values("Authorization"), scopes)
		if failure != nil {
			c.logFailure(r.Context(), failure, "method", r.Method, "path", r.URL.Path)
			writeHTTPFailure(w, failure, scopes)
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithPrincipal(r.Context(), principal)))
	})
}

func writeHTTPFailure(w http.ResponseWriter, failure *authFailure, requiredScopes []string) {
	var status int
	switch failure.kind {
	case failureMissing:
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", "Bearer")
	case failureInvalidRequest:
		status = http.StatusBadRequest
		w.Header().Set("WWW-Authenticate", bearerChallenge("invalid_request", failure.description, nil))
	case failureInvalidToken:
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", bearerChallenge("invalid_token", failure.description, nil))
	case failureInsufficientScope:
		status = http.StatusForbidden
		w.Header().Set("WWW-Authenticate", bearerChallenge("insufficient_scope", failure.description, requiredScopes))
	default:
		status = http.StatusServiceUnavailable
	}
	http.Error(w, http.StatusText(status)+": "+failure.description, status)
}

// bearerChallenge formats a WWW-Authenticate value of RFC 6750 section 3.
// The descriptions come from this package and the scopes match
// scopePattern, so none contains a quote or a backslash.
func bearerChallenge(code, description string, scopes []string) string {
	var b strings.Builder
	b.WriteString(`Bearer error="`)
	b.WriteString(code)
	b.WriteString(`", error_description="`)
	b.WriteString(description)
	b.WriteString(`"`)
	if len(scopes) > 0 {
		b.WriteString(`, scope="`)
		b.WriteString(strings.Join(scopes, " "))
		b.WriteString(`"`)
	}
	return b.String()
}
