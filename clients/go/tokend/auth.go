package tokend

import (
	"context"
	"fmt"
	"strings"

	tokensv1 "github.com/tokend/tokend/clients/go/gen/tokens/v1"
)

// failureKind is the reason a request was not authenticated. The HTTP
// middleware and the gRPC interceptors map it to their own status codes.
type failureKind int

const (
	// failureMissing: the request carries no credentials.
	failureMissing failureKind = iota + 1
	// failureInvalidRequest: the request carries more than one credential.
	failureInvalidRequest
	// failureInvalidToken: the credential is malformed, unknown, expired
	// or revoked.
	failureInvalidToken
	// failureInsufficientScope: the token is valid but lacks a required
	// scope.
	failureInsufficientScope
	// failureUnavailable: tokend returned an error or could not be
	// reached.
	failureUnavailable
)

// authFailure describes a rejected request. description is safe to send
// to the caller: it never contains the token or internal errors.
type authFailure struct {
	kind        failureKind
	description string
	cause       error
}

// authenticate checks the Authorization values of one request against
// tokend and returns the principal, or why the request must be rejected.
func (c *Client) authenticate(ctx context.Context, values []string, requiredScopes []string) (Principal, *authFailure) {
	switch len(values) {
	case 0:
		return Principal{}, &authFailure{kind: failureMissing, description: "the request has no bearer token"}
	case 1:
	default:
		return Principal{}, &authFailure{kind: failureInvalidRequest, description: "the request has more than one Authorization value"}
	}

	token, err := parseBearer(values[0])
	if err != nil {
		return Principal{}, &authFailure{kind: failureInvalidToken, description: err.Error()}
	}

	response, err := c.Validate(ctx, token, requiredScopes...)
	if err != nil {
		return Principal{}, &authFailure{kind: failureUnavailable, description: "token validation is unavailable", cause: err}
	}

	result := response.GetResult()
	switch {
	case response.GetValid() && result == tokensv1.ValidateResult_VALIDATE_RESULT_VALID && response.GetToken() != nil:
		return principalFromToken(response.GetToken()), nil
	case result == tokensv1.ValidateResult_VALIDATE_RESULT_INSUFFICIENT_SCOPE:
		return Principal{}, &authFailure{
			kind:        failureInsufficientScope,
			description: "the token lacks a required scope: " + strings.Join(requiredScopes, " "),
		}
	case !response.GetValid() && isInvalidTokenResult(result):
		return Principal{}, &authFailure{kind: failureInvalidToken, description: describeResult(result)}
	default:
		// A response this client does not understand, such as a result
		// added in a later tokend version, is not taken as valid.
		return Principal{}, &authFailure{
			kind:        failureUnavailable,
			description: "token validation is unavailable",
			cause:       fmt.Errorf("unexpected Validate response: valid=%t result=%v token set=%t", response.GetValid(), result, response.GetToken() != nil),
		}
	}
}

func isInvalidTokenResult(result tokensv1.ValidateResult) bool {
	switch result {
	case tokensv1.ValidateResult_VALIDATE_RESULT_MALFORMED,
		tokensv1.ValidateResult_VALIDATE_RESULT_NOT_FOUND,
		tokensv1.ValidateResult_VALIDATE_RESULT_EXPIRED,
		tokensv1.ValidateResult_VALIDATE_RESULT_REVOKED:
		return true
	}
	return false
}

func describeResult(result tokensv1.ValidateResult) string {
	switch result {
	case tokensv1.ValidateResult_VALIDATE_RESULT_MALFORMED:
		return "the token is malformed"
	case tokensv1.ValidateResult_VALIDATE_RESULT_EXPIRED:
		return "the token expired"
	case tokensv1.ValidateResult_VALIDATE_RESULT_REVOKED:
		return "the token was revoked"
	default:
		return "the token is not known"
	}
}

// logFailure logs failures that point to a problem on the service's side
// (tokend unreachable or returning errors). Rejected tokens are normal
// traffic and are not logged.
func (c *Client) logFailure(ctx context.Context, failure *authFailure, attributes ...any) {
	if failure.kind != failureUnavailable {
		return
	}
	suppressed, ok := c.limiter.allow()
	if !ok {
		return
	}
	attributes = append(attributes, "error", failure.cause, "suppressed_since_last", suppressed)
	c.logger.WarnContext(ctx, "tokend: token validation failed, rejecting request", attributes...)
}
