package tokend

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// maxTokenLength is the longest value tokend accepts as a token. Longer
// values are MALFORMED there, so they are rejected here without a call.
const maxTokenLength = 255

// b64tokenPattern is the b64token syntax of RFC 6750 section 2.1.
var b64tokenPattern = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)

// scopePattern is tokend's scope syntax. A required scope outside it can
// never be granted.
var scopePattern = regexp.MustCompile(`^[a-z][a-z0-9_.:-]{0,63}$`)

var (
	errNotBearer    = errors.New("the authorization scheme is not Bearer")
	errMissingToken = errors.New("the Bearer credential has no token")
	errTokenSyntax  = errors.New("the token contains characters outside the RFC 6750 b64token syntax")
	errTokenLength  = fmt.Errorf("the token is longer than %d characters", maxTokenLength)
)

// parseBearer returns the token of an Authorization value in the form
// RFC 6750 section 2.1 defines: the scheme "Bearer" in any letter case, one
// or more spaces, then the token. Surrounding spaces and tabs are ignored.
func parseBearer(value string) (string, error) {
	value = strings.Trim(value, " \t")
	scheme, rest, found := strings.Cut(value, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errNotBearer
	}
	if !found {
		return "", errMissingToken
	}

	token := strings.TrimLeft(rest, " ")
	if token == "" {
		return "", errMissingToken
	}
	if len(token) > maxTokenLength {
		return "", errTokenLength
	}
	if !b64tokenPattern.MatchString(token) {
		return "", errTokenSyntax
	}
	return token, nil
}

// mustCheckScopes panics on a required scope that no token can hold,
// because every request would then be rejected.
func mustCheckScopes(scopes []string) {
	for _, scope := range scopes {
		if !scopePattern.MatchString(scope) {
			panic(fmt.Sprintf("tokend: invalid required scope %q: a scope matches [a-z][a-z0-9_.:-]{0,63}", scope))
		}
	}
}
