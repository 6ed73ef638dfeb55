package tokend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const (
	// startTimeout bounds the wait for a new tokend to report SERVING. A
	// debug build migrates its SQLite database on first start.
	startTimeout = 30 * time.Second
	// stopTimeout bounds the wait after SIGTERM before the process is
	// killed.
	stopTimeout = 10 * time.Second
	// startAttempts retries with a new port when another process took the
	// chosen free port before tokend bound it.
	startAttempts = 3
)

// tokendProcess is a tokend server started by a test, with its own data
// directory and a loopback port.
type tokendProcess struct {
	binary  string
	dataDir string
	addr    string
	logPath string
	options startOptions

	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// createdToken is the id and secret of a token made by
// `tokend admin create-token --output json`.
type createdToken struct {
	ID     string
	Secret string
}

// createTokenOutput is the JSON that `tokend admin create-token --output
// json` prints: the token's metadata under "token", as in GenerateResponse,
// and the secret. A top-level "id" is accepted too.
type createTokenOutput struct {
	ID    string `json:"id"`
	Token struct {
		ID string `json:"id"`
	} `json:"token"`
	Secret string `json:"secret"`
}

// tokendBinary returns the tokend binary to test: TOKEND_BIN, or the debug
// build of this repository. A relative TOKEND_BIN is taken relative to the
// Go module root (clients/go), because `go test` runs each package in its
// own directory.
func tokendBinary() (string, error) {
	moduleRoot, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	binary := os.Getenv("TOKEND_BIN")
	if binary == "" {
		binary = filepath.Join("..", "..", "target", "debug", "tokend")
	}
	if !filepath.IsAbs(binary) {
		binary = filepath.Join(moduleRoot, binary)
	}
	info, err := os.Stat(binary)
	if err != nil {
		return "", fmt.Errorf("tokend binary not found at %s: build it with `cargo build` in the repository root or set TOKEND_BIN: %w", binary, err)
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("tokend binary at %s is not an executable file", binary)
	}
	return binary, nil
}

// tokendEnv is the test process's environment without TOKEND_* variables,
// so a developer's TOKEND_DATABASE_URL or TOKEND_TOKEN cannot redirect the
// server under test.
func tokendEnv() []string {
	var env []string
	for _, entry := range os.Environ() {
		if !strings.HasPrefix(entry, "TOKEND_") {
			env = append(env, entry)
		}
	}
	return env
}

// startOptions changes how startTokendWith runs tokend.
type startOptions struct {
	// serveFlags are appended to the `tokend serve` command line, such as
	// --tls-cert and --tls-key.
	serveFlags []string
	// healthCredentials are the transport credentials of the readiness
	// check. Nil means plaintext.
	healthCredentials credentials.TransportCredentials
}

// startTokend starts `tokend serve` on a fresh data directory under
// parentDir and waits until its health service reports SERVING.
func startTokend(parentDir string) (*tokendProcess, error) {
	return startTokendWith(parentDir, startOptions{})
}

// startTokendWith is startTokend with extra serve flags and the
// credentials that the readiness check needs for them.
func startTokendWith(parentDir string, options startOptions) (*tokendProcess, error) {
	binary, err := tokendBinary()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp(parentDir, "tokend-")
	if err != nil {
		return nil, err
	}

	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		process := &tokendProcess{
			binary:  binary,
			dataDir: dataDir,
			logPath: filepath.Join(dataDir, fmt.Sprintf("serve-%d.log", attempt)),
			options: options,
		}
		lastErr = process.start()
		if lastErr == nil {
			return process, nil
		}
		process.stop()
		if !process.hasExited() {
			break
		}
	}
	return nil, lastErr
}

func (p *tokendProcess) start() error {
	port, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	p.addr = fmt.Sprintf("127.0.0.1:%d", port)

	logFile, err := os.Create(p.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	args := []string{"serve", "--data-dir", p.dataDir, "--listen", p.addr}
	p.cmd = exec.Command(p.binary, append(args, p.options.serveFlags...)...)
	p.cmd.Env = tokendEnv()
	p.cmd.Stdout = logFile
	p.cmd.Stderr = logFile
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.binary, err)
	}
	p.exited = make(chan struct{})
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()

	if err := p.waitServing(); err != nil {
		return fmt.Errorf("%w\ntokend log (%s):\n%s", err, p.logPath, p.logTail())
	}
	return nil
}

// waitServing polls grpc.health.v1 until the server reports SERVING, the
// process exits or startTimeout passes.
func (p *tokendProcess) waitServing() error {
	transport := p.options.healthCredentials
	if transport == nil {
		transport = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(transport))
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)

	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("tokend exited before serving: %v", p.cmd.ProcessState)
		default:
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		response, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && response.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		lastErr = err
		if err == nil {
			lastErr = fmt.Errorf("health status %v", response.GetStatus())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("tokend at %s not SERVING after %v: %v", p.addr, startTimeout, lastErr)
}

// stop sends SIGTERM and waits for the exit, killing the process after
// stopTimeout. It is safe to call more than once.
func (p *tokendProcess) stop() {
	p.once.Do(func() {
		if p.cmd == nil || p.cmd.Process == nil || p.exited == nil {
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

func (p *tokendProcess) hasExited() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// createToken runs `tokend admin create-token` against the data directory,
// which writes to the database without going through the server.
func (p *tokendProcess) createToken(owner, name string, scopes ...string) (createdToken, error) {
	args := []string{"admin", "create-token", "--data-dir", p.dataDir, "--owner", owner, "--name", name, "--output", "json"}
	for _, scope := range scopes {
		args = append(args, "--scope", scope)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.binary, args...)
	cmd.Env = tokendEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return createdToken{}, fmt.Errorf("tokend admin create-token: %w\nstderr:\n%s", err, stderr.String())
	}

	var output createTokenOutput
	if err := json.Unmarshal(stdout.Bytes(), &output); err != nil {
		return createdToken{}, fmt.Errorf("parse tokend admin create-token output: %w", err)
	}
	token := createdToken{ID: output.Token.ID, Secret: output.Secret}
	if token.ID == "" {
		token.ID = output.ID
	}
	if token.ID == "" || token.Secret == "" {
		return createdToken{}, fmt.Errorf("tokend admin create-token output lacks token.id or secret (%d bytes of output)", stdout.Len())
	}
	return token, nil
}

func (p *tokendProcess) logTail() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	const maxTail = 4000
	if len(data) > maxTail {
		data = data[len(data)-maxTail:]
	}
	return string(data)
}

func freeLoopbackPort() (int, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer listener.Close()
	addr, ok := listener.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("loopback listener has no TCP address")
	}
	return addr.Port, nil
}
