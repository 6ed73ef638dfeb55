package tokend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	tokensv1 "github.com/tokend/tokend/clients/go/gen/tokens/v1"
)

const (
	// DefaultCallTimeout bounds each call when the caller's context has no
	// earlier deadline.
	DefaultCallTimeout = 5 * time.Second

	// defaultConnectTimeout bounds one connection attempt.
	defaultConnectTimeout = 5 * time.Second

	// defaultMaxReconnectDelay caps the reconnect backoff. grpc-go's default
	// cap is 120 s, which would keep a service rejecting requests for up to
	// two minutes after tokend comes back.
	defaultMaxReconnectDelay = 5 * time.Second
)

// Client calls tokend's TokenService with the caller's token attached to
// every call. It is safe for concurrent use; create one per process and
// share it.
type Client struct {
	conn        *grpc.ClientConn
	service     tokensv1.TokenServiceClient
	callTimeout time.Duration
	logger      *slog.Logger
	limiter     *logLimiter
}

type config struct {
	token            string
	tlsConfig        *tls.Config
	insecureLoopback bool
	callTimeout      time.Duration
	logger           *slog.Logger
	dialOptions      []grpc.DialOption
}

// Option configures a Client.
type Option func(*config)

// WithToken sets the token sent as `authorization: Bearer <token>` on every
// call. It is required. A service that only checks incoming requests needs
// a token with the tokens:validate scope.
func WithToken(token string) Option {
	return func(c *config) { c.token = token }
}

// WithTLSConfig sets the TLS configuration, for example a private CA pool
// in RootCAs or a client certificate for mutual TLS. Without it the client
// uses TLS with the system's root CAs.
func WithTLSConfig(tlsConfig *tls.Config) Option {
	return func(c *config) { c.tlsConfig = tlsConfig }
}

// WithInsecureLoopback sends calls without TLS. New accepts it only for a
// loopback target (localhost, 127.0.0.0/8, ::1) or a Unix socket, where the
// traffic does not leave the host, such as a local tokend in development
// or a sidecar proxy that terminates TLS.
func WithInsecureLoopback() Option {
	return func(c *config) { c.insecureLoopback = true }
}

// WithCallTimeout sets the timeout of each call made without an earlier
// context deadline. The default is DefaultCallTimeout.
func WithCallTimeout(timeout time.Duration) Option {
	return func(c *config) { c.callTimeout = timeout }
}

// WithLogger sets the logger for errors that the middleware and the
// interceptors handle themselves. The default is slog.Default().
func WithLogger(logger *slog.Logger) Option {
	return func(c *config) { c.logger = logger }
}

// WithDialOptions adds gRPC dial options, applied after the client's own,
// for example keepalive parameters or client interceptors.
func WithDialOptions(options ...grpc.DialOption) Option {
	return func(c *config) { c.dialOptions = append(c.dialOptions, options...) }
}

// New creates a client for the tokend server at target, in the syntax of
// grpc.NewClient (for example "tokend.internal:8443" or
// "dns:///tokend.internal:8443"). It does not connect: the connection is
// made on the first call and re-established after failures.
func New(target string, options ...Option) (*Client, error) {
	cfg := config{callTimeout: DefaultCallTimeout, logger: slog.Default()}
	for _, option := range options {
		option(&cfg)
	}

	if err := checkCallerToken(cfg.token); err != nil {
		return nil, err
	}
	if cfg.callTimeout <= 0 {
		return nil, fmt.Errorf("tokend: invalid call timeout %v: must be positive", cfg.callTimeout)
	}
	if cfg.insecureLoopback && cfg.tlsConfig != nil {
		return nil, errors.New("tokend: WithInsecureLoopback and WithTLSConfig are mutually exclusive")
	}

	var transport credentials.TransportCredentials
	if cfg.insecureLoopback {
		if !isLoopbackTarget(target) {
			return nil, fmt.Errorf("tokend: WithInsecureLoopback rejected for target %q: plaintext is allowed only for localhost, 127.0.0.0/8, ::1 or a Unix socket; use TLS for other hosts", target)
		}
		transport = insecure.NewCredentials()
	} else {
		tlsConfig := cfg.tlsConfig
		if tlsConfig == nil {
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		transport = credentials.NewTLS(tlsConfig)
	}

	reconnect := backoff.DefaultConfig
	reconnect.MaxDelay = defaultMaxReconnectDelay
	dialOptions := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithPerRPCCredentials(bearerCredentials{token: cfg.token, requireTLS: !cfg.insecureLoopback}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnect, MinConnectTimeout: defaultConnectTimeout}),
	}
	dialOptions = append(dialOptions, cfg.dialOptions...)

	conn, err := grpc.NewClient(target, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("tokend: create client for %q: %w", target, err)
	}
	return &Client{
		conn:        conn,
		service:     tokensv1.NewTokenServiceClient(conn),
		callTimeout: cfg.callTimeout,
		logger:      cfg.logger,
		limiter:     newLogLimiter(time.Second),
	}, nil
}

// Close closes the connection. Calls in progress fail with codes.Canceled.
func (c *Client) Close() error {
	return c.conn.Close()
}

// Service returns the generated TokenService client, for calls that need
// gRPC call options. It shares the connection and the caller's token but
// applies no default timeout.
func (c *Client) Service() tokensv1.TokenServiceClient {
	return c.service
}

// Generate creates a token. The secret in the response is returned only
// once.
func (c *Client) Generate(ctx context.Context, request *tokensv1.GenerateRequest) (*tokensv1.GenerateResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return c.service.Generate(ctx, request)
}

// List returns one page of tokens, newest first.
func (c *Client) List(ctx context.Context, request *tokensv1.ListRequest) (*tokensv1.ListResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return c.service.List(ctx, request)
}

// Revoke revokes the token with the given id. Revoking a revoked token
// succeeds.
func (c *Client) Revoke(ctx context.Context, id string) (*tokensv1.RevokeResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return c.service.Revoke(ctx, &tokensv1.RevokeRequest{Id: id})
}

// Validate checks with tokend whether token is valid and has every scope in
// requiredScopes. The token may be bare or a whole "Bearer <token>" value.
// A bad token is reported in the response's Result, not as an error. An
// error means that the check could not be made, so the token must be
// treated as not valid.
func (c *Client) Validate(ctx context.Context, token string, requiredScopes ...string) (*tokensv1.ValidateResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return c.service.Validate(ctx, &tokensv1.ValidateRequest{Token: token, RequiredScopes: requiredScopes})
}

// withTimeout applies the call timeout. A shorter deadline already on ctx
// still wins.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.callTimeout)
}
