package examples_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/syncbuf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
	"github.com/p2phttp/p2phttp/signal"
)

// build compiles the examples once into a temporary directory and returns the path of each binary by name.
var build = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "p2phttp-examples")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./fetch", "./serve", "./symmetric").CombinedOutput()
	if err != nil {
		return "", &buildError{out}
	}
	return dir, nil
})

type buildError struct{ out []byte }

func (e *buildError) Error() string { return "go build ./examples/...: " + string(e.out) }

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := build(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// example is a running example program.
type example struct {
	cmd            *exec.Cmd
	stdout, stderr syncbuf.Buffer
	done           chan error
}

func run(t *testing.T, srv *rendezvoustest.Server, name string, args ...string) *example {
	t.Helper()
	dir, err := build()
	require.NoError(t, err)
	args = append([]string{"-signal", srv.URL, "-stun", srv.STUNAddr, "-udp", "127.0.0.1:0"}, args...)
	e := &example{cmd: exec.Command(filepath.Join(dir, name), args...), done: make(chan error, 1)}
	e.cmd.Stdout, e.cmd.Stderr = &e.stdout, &e.stderr
	require.NoError(t, e.cmd.Start())
	go func() { e.done <- e.cmd.Wait() }()
	t.Cleanup(func() {
		e.cmd.Process.Kill()
		<-e.done
	})
	return e
}

// wait waits for the program to exit and returns its error.
func (e *example) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.done:
		e.done <- err // for the cleanup
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("%s still running; stderr:\n%s", e.cmd.Args[0], e.stderr.String())
		return nil
	}
}

func newServer(t *testing.T) *rendezvoustest.Server {
	srv, err := rendezvoustest.NewServer(rendezvoustest.Unlimited())
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchFromServe(t *testing.T) {
	srv := newServer(t)
	code := signal.NewCode()
	serve := run(t, srv, "serve", "-code", code)
	// Three requests at once, each on a stream of its own; the bodies come out in the order asked.
	fetch := run(t, srv, "fetch", "-code", code, "/hello", "/hello/a", "/hello/b")
	require.NoError(t, fetch.wait(t), fetch.stderr.String())
	assert.Equal(t, "hello, peer! you asked for /hello\nhello, peer! you asked for /hello/a\nhello, peer! you asked for /hello/b\n",
		fetch.stdout.String())
	assert.Regexp(t, `^serve: hosting code `+code+`\nserve: guest 127\.0\.0\.1:\d+ connected, rtt \S+\n`, serve.stderr.String())

	// fetch exits non-zero on a non-200 answer.
	code = signal.NewCode()
	run(t, srv, "serve", "-code", code)
	fetch = run(t, srv, "fetch", "-code", code, "/nope")
	assert.Error(t, fetch.wait(t))
	assert.Contains(t, fetch.stderr.String(), "fetch: peer answered 404 Not Found")
}

func TestSymmetricWhoeverWritesFirstIsTheClient(t *testing.T) {
	srv := newServer(t)
	code := signal.NewCode()
	// The host asks: meeting roles and HTTP roles are independent.
	answerer := run(t, srv, "symmetric", "-code", code)
	asker := run(t, srv, "symmetric", "-code", code, "-host", "-ask", "/time")
	require.NoError(t, asker.wait(t), asker.stderr.String())
	require.NoError(t, answerer.wait(t), answerer.stderr.String())

	assert.Regexp(t, regexp.MustCompile(`^socket undecided: read state empty, write state empty
wrote GET /time first: this peer is the client
response: 200 OK
the server peer's clock says \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ
$`), asker.stdout.String())
	assert.Equal(t, "socket undecided: read state empty, write state empty\nread GET /time first: this peer is the server\n",
		answerer.stdout.String())
}
