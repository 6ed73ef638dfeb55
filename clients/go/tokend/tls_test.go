package tokend_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	tokensv1 "github.com/tokend/tokend/clients/go/gen/tokens/v1"
	"github.com/tokend/tokend/clients/go/tokend"
)

// testPKI is a CA made for one test, with a server certificate for
// 127.0.0.1 and localhost and a client certificate, written as PEM files.
type testPKI struct {
	caFile     string
	serverCert string
	serverKey  string

	roots  *x509.CertPool
	client tls.Certificate
}

// newTestPKI creates the CA and both certificates in dir.
func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	now := time.Now()

	caKey := newKey(t)
	caTemplate := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: "tokend Go client test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}

	issue := func(name string, usage x509.ExtKeyUsage, dnsNames []string, ips []net.IP) (certPEM, keyPEM []byte) {
		key := newKey(t)
		template := &x509.Certificate{
			SerialNumber: newSerial(t),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     dnsNames,
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, template, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("create certificate for %s: %v", name, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("encode key for %s: %v", name, err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	}

	serverCert, serverKey := issue("localhost", x509.ExtKeyUsageServerAuth,
		[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	clientCert, clientKey := issue("svc-gateway", x509.ExtKeyUsageClientAuth, nil, nil)
	client, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatalf("load client key pair: %v", err)
	}

	pki := testPKI{
		caFile:     filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"),
		serverKey:  filepath.Join(dir, "server.key"),
		roots:      x509.NewCertPool(),
		client:     client,
	}
	pki.roots.AddCert(caCert)
	files := map[string][]byte{
		pki.caFile:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pki.serverCert: serverCert,
		pki.serverKey:  serverKey,
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	return pki
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func newSerial(t *testing.T) *big.Int {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("generate serial number: %v", err)
	}
	return serial
}

// TestValidateOverMutualTLS runs Validate through WithTLSConfig against a
// tokend that requires client certificates signed by a private CA.
func TestValidateOverMutualTLS(t *testing.T) {
	pki := newTestPKI(t, t.TempDir())
	withClientCert := &tls.Config{
		RootCAs:      pki.roots,
		Certificates: []tls.Certificate{pki.client},
		MinVersion:   tls.VersionTLS12,
	}
	process, err := startTokendWith(testRoot, startOptions{
		serveFlags: []string{
			"--tls-cert", pki.serverCert,
			"--tls-key", pki.serverKey,
			"--tls-client-ca", pki.caFile,
		},
		healthCredentials: credentials.NewTLS(withClientCert),
	})
	if err != nil {
		t.Fatalf("start tokend with TLS: %v", err)
	}
	t.Cleanup(process.stop)

	service, err := process.createToken("svc:gateway", "go tls test", "tokens:validate")
	if err != nil {
		t.Fatal(err)
	}
	user, err := process.createToken("alice", "go tls user", "tokens:self")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	newTLSClient := func(config *tls.Config) *tokend.Client {
		t.Helper()
		options := []tokend.Option{tokend.WithToken(service.Secret), tokend.WithLogger(quietLogger())}
		if config != nil {
			options = append(options, tokend.WithTLSConfig(config))
		}
		client, err := tokend.New(process.addr, options...)
		if err != nil {
			t.Fatalf("tokend.New(%s): %v", process.addr, err)
		}
		t.Cleanup(func() { client.Close() })
		return client
	}

	t.Run("client certificate", func(t *testing.T) {
		response, err := newTLSClient(withClientCert).Validate(ctx, user.Secret)
		if err != nil {
			t.Fatalf("Validate over mutual TLS: %v", err)
		}
		if !response.GetValid() || response.GetResult() != tokensv1.ValidateResult_VALIDATE_RESULT_VALID {
			t.Errorf("Validate = valid %t result %v, want VALID", response.GetValid(), response.GetResult())
		}
		if response.GetToken().GetOwner() != "alice" {
			t.Errorf("Validate owner = %q, want alice", response.GetToken().GetOwner())
		}
	})

	t.Run("no client certificate", func(t *testing.T) {
		client := newTLSClient(&tls.Config{RootCAs: pki.roots, MinVersion: tls.VersionTLS12})
		_, err := client.Validate(ctx, user.Secret)
		if err == nil {
			t.Fatal("Validate without a client certificate succeeded, want an error")
		}
		if !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("Validate without a client certificate: %v, want the server's certificate required alert", err)
		}
	})

	t.Run("system roots only", func(t *testing.T) {
		// The default configuration trusts the system's root CAs, which do
		// not include the test CA.
		_, err := newTLSClient(nil).Validate(ctx, user.Secret)
		if err == nil {
			t.Fatal("Validate with an untrusted server certificate succeeded, want an error")
		}
		if !strings.Contains(err.Error(), "unknown authority") {
			t.Errorf("Validate with an untrusted server certificate: %v, want an unknown authority error", err)
		}
	})
}
