package tokend_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	tokensv1 "github.com/tokend/tokend/clients/go/gen/tokens/v1"
	"github.com/tokend/tokend/clients/go/tokend"
)

// These examples are compiled but not run, because they need a tokend
// server.

func ExampleNew() {
	ctx := context.Background()
	client, err := tokend.New("tokend.internal:8443", tokend.WithToken(os.Getenv("TOKEND_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	created, err := client.Generate(ctx, &tokensv1.GenerateRequest{
		Owner: "alice", Name: "deploy script", Scopes: []string{"repo:read"},
		Expiration: &tokensv1.GenerateRequest_Ttl{Ttl: durationpb.New(30 * 24 * time.Hour)},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("secret, shown once:", created.GetSecret())

	page, err := client.List(ctx, &tokensv1.ListRequest{Owner: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(page.GetTokens()), "tokens")
}

func ExampleWithTLSConfig() {
	// A tokend run with --tls-client-ca requires a client certificate, and
	// its certificate is signed by a private CA.
	caPEM, err := os.ReadFile("/etc/tokend/ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		log.Fatal("no PEM certificate in /etc/tokend/ca.pem")
	}
	clientCert, err := tls.LoadX509KeyPair("/etc/gateway/client.pem", "/etc/gateway/client.key")
	if err != nil {
		log.Fatal(err)
	}

	client, err := tokend.New("tokend.internal:8443",
		tokend.WithToken(os.Getenv("TOKEND_TOKEN")),
		tokend.WithTLSConfig(&tls.Config{
			RootCAs:      roots,
			Certificates: []tls.Certificate{clientCert},
			MinVersion:   tls.VersionTLS12,
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	response, err := client.Validate(context.Background(), os.Getenv("INCOMING_TOKEN"), "repo:read")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(response.GetResult())
}

func ExampleClient_Middleware() {
	client, err := tokend.New("tokend.internal:8443", tokend.WithToken(os.Getenv("TOKEND_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	reposHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal, _ := tokend.PrincipalFromContext(r.Context())
		fmt.Fprintf(w, "hello %s (token %s, scopes %v, expires %v)\n",
			principal.Owner, principal.TokenID, principal.Scopes, principal.ExpiresAt)
	})

	mux := http.NewServeMux()
	mux.Handle("/repos/", client.Middleware(reposHandler, "repo:read"))
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mux))
}

func ExampleClient_UnaryServerInterceptor() {
	client, err := tokend.New("tokend.internal:8443", tokend.WithToken(os.Getenv("TOKEND_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	server := grpc.NewServer(
		grpc.ChainUnaryInterceptor(client.UnaryServerInterceptor("repo:read")),
		grpc.ChainStreamInterceptor(client.StreamServerInterceptor("repo:read")),
	)
	_ = server
}
