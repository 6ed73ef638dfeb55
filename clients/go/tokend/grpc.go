package tokend

import (
	"context"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor returns an interceptor that admits a call only
// when its `authorization: Bearer <token>` metadata carries a token that
// tokend reports as valid and holding every scope in requiredScopes. The
// handler reads the caller with PrincipalFromContext(ctx).
//
// Missing, malformed, unknown, expired and revoked tokens fail with
// codes.Unauthenticated, a valid token without a required scope with
// codes.PermissionDenied, and any failure to get a response from tokend
// with codes.Unavailable. It panics on a required scope outside tokend's scope
// syntax.
func (c *Client) UnaryServerInterceptor(requiredScopes ...string) grpc.UnaryServerInterceptor {
	mustCheckScopes(requiredScopes)
	scopes := slices.Clone(requiredScopes)

	return func(ctx context.Context, request any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := c.authenticateCall(ctx, info.FullMethod, scopes)
		if err != nil {
			return nil, err
		}
		return handler(ctx, request)
	}
}

// StreamServerInterceptor is the streaming counterpart of
// UnaryServerInterceptor, with the same rules. The token is checked once,
// when the stream opens.
func (c *Client) StreamServerInterceptor(requiredScopes ...string) grpc.StreamServerInterceptor {
	mustCheckScopes(requiredScopes)
	scopes := slices.Clone(requiredScopes)

	return func(server any, stream grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := c.authenticateCall(stream.Context(), info.FullMethod, scopes)
		if err != nil {
			return err
		}
		return handler(server, &authenticatedStream{ServerStream: stream, ctx: ctx})
	}
}

// authenticateCall checks the call's metadata and returns a context with
// the principal, or the status error to return.
func (c *Client) authenticateCall(ctx context.Context, method string, requiredScopes []string) (context.Context, error) {
	values := metadata.ValueFromIncomingContext(ctx, "authorization")
	principal, failure := c.authenticate(ctx, values, requiredScopes)
	if failure == nil {
		return ContextWithPrincipal(ctx, principal), nil
	}

	c.logFailure(ctx, failure, "method", method)
	switch failure.kind {
	case failureInsufficientScope:
		return nil, status.Error(codes.PermissionDenied, failure.description)
	case failureUnavailable:
		return nil, status.Error(codes.Unavailable, failure.description)
	default:
		return nil, status.Error(codes.Unauthenticated, failure.description)
	}
}

// authenticatedStream replaces the stream's context with one that carries
// the principal.
type authenticatedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authenticatedStream) Context() context.Context {
	return s.ctx
}
