// Package mototest runs moto_server, a local emulation of AWS Secrets Manager, for tests that
// exercise the real aws-sdk-go-v2 client. A missing moto_server fails the test with instructions;
// it never skips, because a skipped Secrets Manager test would hide exactly the bugs it exists for.
package mototest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Server is a running moto_server.
type Server struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Shared returns a moto_server shared by every test in the test binary, starting it on first use.
// Tests keep out of each other's way by using their own secret names (see Name). Call Stop from
// TestMain after m.Run; the server also dies with the test process.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		tb.Fatalf("moto_server: %v", sharedErr)
	}
	return shared
}

// StopShared stops the shared server, if one was started.
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
}

// Start starts a new moto_server on a free loopback port and waits until it answers. The port is
// free when chosen but not reserved: a listener of another test (or test binary) may take it before
// moto binds it. Then moto exits, and what answers on the port is not moto; Start notices either,
// and tries again on another port.
func Start() (*Server, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, fmt.Errorf(`moto_server not found on PATH: install it with pip install "moto[server]" (make test-deps does)`)
	}
	for attempt := 1; ; attempt++ {
		s, err := startOn(bin)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 3 {
			return s, err
		}
	}
}

var errPortTaken = errors.New("moto_server exited or another server answers on its port")

func startOn(bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if os.Getenv("MOTO_LOG") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting moto_server: %w", err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("%w (port %d)", errPortTaken, port)
		default:
		}
		resp, err := http.Get(s.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
			s.Stop()
			return nil, fmt.Errorf("%w (port %d answered %s)", errPortTaken, port, resp.Status)
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("moto_server did not answer on %s within 30s", s.URL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the server.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// Client returns a real Secrets Manager client pointed at the server. Extra options (for example a
// fault-injecting HTTP client) apply after the defaults.
func (s *Server) Client(optFns ...func(*secretsmanager.Options)) *secretsmanager.Client {
	opts := secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
	for _, fn := range optFns {
		fn(&opts)
	}
	return secretsmanager.New(opts)
}

// Env returns the environment a child process needs to reach the server with the default AWS
// credential chain.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.URL,
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Reset drops every secret in the server.
func (s *Server) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

var (
	nameMu  sync.Mutex
	nameSeq int
)

// Name returns a secret name unique within the test binary, readable in moto's logs.
func Name(tb testing.TB, kind string) string {
	nameMu.Lock()
	defer nameMu.Unlock()
	nameSeq++
	return fmt.Sprintf("test/%d/%s/%d/%s", os.Getpid(), sanitize(tb.Name()), nameSeq, kind)
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			b[i] = '-'
		}
	}
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
