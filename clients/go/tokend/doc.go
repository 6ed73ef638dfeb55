// Package tokend is a client for the tokend personal access token service,
// with HTTP middleware and gRPC server interceptors that check the bearer
// token of every incoming request against tokend.
//
// A service creates one Client per process with a token that holds the
// tokens:validate scope and wraps its handlers:
//
//	client, err := tokend.New("tokend.internal:8443", tokend.WithToken(os.Getenv("TOKEND_TOKEN")))
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer client.Close()
//	mux.Handle("/", client.Middleware(handler, "repo:read"))
//
// The checks fail closed: a request passes only when tokend reports that
// its token is valid and has every required scope. When tokend cannot be
// reached or returns an error, the middleware responds with 503 and the
// interceptors return codes.Unavailable.
package tokend
