package tokend

import (
	"context"
	"slices"
	"time"

	tokensv1 "github.com/tokend/tokend/clients/go/gen/tokens/v1"
)

// Principal is the authenticated caller of a request: the owner and
// scopes of the token it presented.
type Principal struct {
	// TokenID is the token's UUIDv7 id.
	TokenID string
	// Owner is the owner the token belongs to, for example a user id.
	Owner string
	// Name is the token's name or purpose.
	Name string
	// Scopes are the scopes the token grants, sorted.
	Scopes []string
	// ExpiresAt is the token's expiry time, or the zero time when the token
	// never expires.
	ExpiresAt time.Time
}

// HasScope reports whether the token grants scope.
func (p Principal) HasScope(scope string) bool {
	return slices.Contains(p.Scopes, scope)
}

type principalKey struct{}

// PrincipalFromContext returns the principal that the middleware or an
// interceptor stored in ctx. The boolean is false outside an authenticated
// request.
func PrincipalFromContext(ctx context.Context) (Principal, bool) {
	principal, ok := ctx.Value(principalKey{}).(Principal)
	return principal, ok
}

// ContextWithPrincipal returns a copy of ctx that carries principal, for
// handler tests that run without the middleware.
func ContextWithPrincipal(ctx context.Context, principal Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, principal)
}

func principalFromToken(token *tokensv1.Token) Principal {
	principal := Principal{
		TokenID: token.GetId(),
		Owner:   token.GetOwner(),
		Name:    token.GetName(),
		Scopes:  slices.Clone(token.GetScopes()),
	}
	if token.GetExpiresAt() != nil {
		principal.ExpiresAt = token.GetExpiresAt().AsTime()
	}
	return principal
}
