package tokend

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
)

// bearerCredentials attaches the caller's token to every call.
type bearerCredentials struct {
	token      string
	requireTLS bool
}

func (b bearerCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity makes grpc-go refuse to send the token over a
// plaintext connection unless the client was built with
// WithInsecureLoopback.
func (b bearerCredentials) RequireTransportSecurity() bool {
	return b.requireTLS
}

// String keeps the token out of logs and %v output.
func (b bearerCredentials) String() string {
	return "bearerCredentials{token: REDACTED}"
}

// checkCallerToken rejects tokens that cannot be sent as a header value.
func checkCallerToken(token string) error {
	if token == "" {
		return errors.New("tokend: missing token: pass WithToken with a token that has the scopes the calls need (tokens:validate for Validate)")
	}
	if strings.HasPrefix(strings.ToLower(token), "bearer ") {
		return errors.New("tokend: invalid token: pass the bare token to WithToken, without the \"Bearer \" prefix")
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] >= 0x7f {
			return errors.New("tokend: invalid token: it contains whitespace, control or non-ASCII characters")
		}
	}
	return nil
}

// isLoopbackTarget reports whether a grpc.NewClient target names a Unix
// socket, localhost or a loopback IP address.
func isLoopbackTarget(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}

	// Targets with a scheme, such as dns:///host:port or
	// passthrough:///host:port, carry the address in the URL path.
	hostPort := target
	if strings.Contains(target, "://") {
		parsed, err := url.Parse(target)
		if err != nil {
			return false
		}
		hostPort = strings.TrimPrefix(parsed.Path, "/")
		if hostPort == "" {
			hostPort = parsed.Opaque
		}
	}

	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		// grpc.NewClient accepts a host without a port and uses 443.
		host = strings.Trim(hostPort, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
