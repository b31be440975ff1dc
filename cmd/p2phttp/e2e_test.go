package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/transport/utp"
)

// binary is the p2phttp program built once for this test binary by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "p2phttp-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "p2phttp")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building p2phttp:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// proc is a running p2phttp whose output the test can wait for.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// start runs the binary with args; the test's cleanup kills it if it is still running.
func start(t *testing.T, args ...string) *proc { return startWith(t, "", args...) }

// startCode runs the binary with args and code in $P2PHTTP_CODE.
func startCode(t *testing.T, code string, args ...string) *proc { return startWith(t, code, args...) }

func startWith(t *testing.T, code string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "P2PHTTP_SIGNAL=", "P2PHTTP_STUN=", "P2PHTTP_CODE="+code)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) output() (stdout, stderr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String(), p.stderr.String()
}

// waitStderr waits until stderr matches re and returns the match's groups.
func (p *proc) waitStderr(re string, timeout time.Duration) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_, stderr := p.output()
		if m := rx.FindStringSubmatch(stderr); m != nil {
			return m
		}
		select {
		case <-p.done:
			_, stderr = p.output()
			if m := rx.FindStringSubmatch(stderr); m != nil {
				return m
			}
			p.t.Fatalf("%s exited (%v) before printing %q; stderr:\n%s", p.cmd.Args, p.err, re, stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	_, stderr := p.output()
	p.t.Fatalf("%s did not print %q within %s; stderr:\n%s", p.cmd.Args, re, timeout, stderr)
	return nil
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_, stderr := p.output()
		p.t.Fatalf("%s still running after %s; stderr:\n%s", p.cmd.Args, timeout, stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// interrupt sends SIGINT (Ctrl-C) and returns the exit status.
func (p *proc) interrupt() int {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(os.Interrupt))
	return p.wait(10 * time.Second)
}

// runBinary runs the binary to completion and returns stdout, stderr and the exit status.
func runBinary(t *testing.T, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	return runCode(t, timeout, "", args...)
}

// runCode is runBinary with code in $P2PHTTP_CODE.
func runCode(t *testing.T, timeout time.Duration, code string, args ...string) (string, string, int) {
	t.Helper()
	p := startCode(t, code, args...)
	status := p.wait(timeout)
	stdout, stderr := p.output()
	return stdout, stderr, status
}

// testServer is a signalling server with STUN on loopback, without the per-IP rate limit (every test peer is
// 127.0.0.1).
func testServer(t *testing.T) *rendezvoustest.Server {
	t.Helper()
	srv, err := rendezvoustest.NewServer(rendezvoustest.Unlimited())
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

// peerArgs are the flags that point a peer command at srv over loopback only.
func peerArgs(srv *rendezvoustest.Server) []string {
	return []string{"--signal", srv.URL, "--stun", srv.STUNAddr, "--udp", "127.0.0.1:0"}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer pc.Close()
		return pc.LocalAddr().String()
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestSignalCommand(t *testing.T) {
	httpAddr, stunAddr := freeAddr(t, "tcp"), freeAddr(t, "udp")
	// The second STUN port and the relay default to the next ports, which a busy machine may be using: any will do.
	p := start(t, "signal", "--http", httpAddr, "--stun", stunAddr, "--stun-alt", "127.0.0.1:0", "--turn", "127.0.0.1:0")
	p.waitStderr(`signalling server on http `+regexp.QuoteMeta(httpAddr), 10*time.Second)

	// The HTTP API answers (retry while the listener comes up).
	var resp *http.Response
	var err error
	for range 100 {
		if resp, err = http.Get("http://" + httpAddr + "/healthz"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// The STUN responder tells a real client its address.
	tr, err := utp.Listen("udp4", "127.0.0.1:0", utp.Config{})
	require.NoError(t, err)
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mapped, err := tr.DiscoverSTUN(ctx, stunAddr)
	require.NoError(t, err)
	assert.Equal(t, tr.LocalAddr().AddrPort(), mapped)

	assert.Equal(t, exitOK, p.interrupt(), "Ctrl-C is the normal way to stop the server")
	_, stderr := p.output()
	assert.Contains(t, stderr, "p2phttp: signalling server stopped")
}

func TestServeDirAndGet(t *testing.T) {
	srv := testServer(t)
	dir := t.TempDir()
	content := randomBytes(t, 3<<20)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blob.bin"), content, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello over p2p\n"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "inner.txt"), []byte("inner"), 0o644))
	code := signal.NewCode()

	serve := startCode(t, code, append([]string{"serve", "--dir", dir}, peerArgs(srv)...)...)

	// Byte-exact download to a file, flags after the arguments.
	out := filepath.Join(t.TempDir(), "blob.bin")
	_, stderr, status := runCode(t, 60*time.Second, code, append([]string{"get", "/blob.bin", "-o", out}, peerArgs(srv)...)...)
	require.Equal(t, exitOK, status, stderr)
	assert.Regexp(t, `^p2phttp: waiting for the peer with code `+code+` at http://127\.0\.0\.1:\d+\n`+
		`p2phttp: connected: direct path to peer 127\.0\.0\.1:\d+ \(no NAT in between: host 127\.0\.0\.1:\d+ <-> host 127\.0\.0\.1:\d+\), rtt [0-9.]+[µm]?s, set up in [0-9.]+m?s\n`+
		`p2phttp: saved `+regexp.QuoteMeta(out)+`: 3\.0 MiB in [0-9.]+m?s \([0-9.]+ [KMG]iB/s\)\n$`, stderr)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, got), "downloaded file differs (%d bytes, want %d)", len(got), len(content))
	assert.NoFileExists(t, out+".part")
	assert.NoFileExists(t, out+".part.meta")

	// The same server answers the next peer: body to stdout, without a leading slash.
	stdout, stderr, status := runCode(t, 60*time.Second, code, append([]string{"get", "hello.txt"}, peerArgs(srv)...)...)
	require.Equal(t, exitOK, status, stderr)
	assert.Equal(t, "hello over p2p\n", stdout)
	assert.Regexp(t, `\np2phttp: received 15 B in [0-9.]+[µm]?s \([0-9.]+ [KMG]?i?B/s\)\n$`, stderr)

	// The redirect from /sub to /sub/ stays on the peer and is followed to the listing.
	stdout, stderr, status = runCode(t, 60*time.Second, code, append([]string{"get", "/sub"}, peerArgs(srv)...)...)
	require.Equal(t, exitOK, status, stderr)
	assert.Contains(t, stdout, `<a href="inner.txt">inner.txt</a>`)

	// A 404 is printed and exits 3, and writes no file.
	missing := filepath.Join(t.TempDir(), "missing")
	stdout, stderr, status = runCode(t, 60*time.Second, code, append([]string{"get", "/nope", "-o", missing}, peerArgs(srv)...)...)
	assert.Equal(t, exitHTTPStatus, status)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "p2phttp: peer answered 404 Not Found for /nope: 404 page not found\n")
	assert.NoFileExists(t, missing)
	assert.NoFileExists(t, missing+".part")

	serve.waitStderr(`guest 127\.0\.0\.1:\d+ left after 1 request\(s\), 19 B sent in [0-9.]+[µm]?s \([0-9.]+ [KMG]?i?B/s\)\n`, 40*time.Second)
	_, serveErr := serve.output()
	assert.Equal(t, 4, strings.Count(serveErr, "connected: direct path"), "serve met each of the four peers in turn")
	// One access-log line per request, by default.
	assert.Regexp(t, `\np2phttp: 127\.0\.0\.1:\d+ GET /blob\.bin 200 3145728 bytes [0-9.]+[µm]?s\n`, serveErr)
	assert.Regexp(t, `\np2phttp: 127\.0\.0\.1:\d+ GET /hello\.txt 200 15 bytes `, serveErr)
	assert.Regexp(t, `\np2phttp: 127\.0\.0\.1:\d+ GET /sub 301 0 bytes `, serveErr)
	assert.Regexp(t, `\np2phttp: 127\.0\.0\.1:\d+ GET /nope 404 19 bytes `, serveErr)
	assert.NotContains(t, serveErr, "warning")
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

func TestServeWithoutCodePrintsTheCommandToRun(t *testing.T) {
	srv := testServer(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>hi</h1>"), 0o644))
	serve := start(t, append([]string{"serve", "--dir", dir}, peerArgs(srv)...)...)
	m := serve.waitStderr(`with code (\S+)\nOn the other machine run one of these, and type the code when it asks:\n  (p2phttp get / [^\n]+)\n  p2phttp forward `, 10*time.Second)
	code, args := m[1], strings.Fields(m[2])
	assert.Equal(t, []string{"p2phttp", "get", "/"}, args[:3])
	assert.Contains(t, m[2], "--signal "+srv.URL+" --stun "+srv.STUNAddr)

	// The code, piped on stdin: never in argv.
	get := exec.Command(binary, append(args[1:], "--udp", "127.0.0.1:0")...)
	get.Env = append(os.Environ(), "P2PHTTP_SIGNAL=", "P2PHTTP_STUN=", "P2PHTTP_CODE=")
	get.Stdin = strings.NewReader(code + "\n")
	var stderr bytes.Buffer
	get.Stderr = &stderr
	stdout, err := get.Output()
	require.NoError(t, err, stderr.String())
	assert.Equal(t, "<h1>hi</h1>", string(stdout))
	assert.NotContains(t, stderr.String(), "warning")
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

func TestServeProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/status" {
			http.Error(w, "no such endpoint", http.StatusTeapot)
			return
		}
		fmt.Fprintf(w, `{"ok":true,"ua":%q}`, r.UserAgent())
	}))
	defer backend.Close()
	srv := testServer(t)
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--proxy", backend.URL}, peerArgs(srv)...)...)

	stdout, stderr, status := runCode(t, 60*time.Second, code, append([]string{"get", "/api/status"}, peerArgs(srv)...)...)
	require.Equal(t, exitOK, status, stderr)
	assert.Equal(t, `{"ok":true,"ua":"p2phttp"}`, stdout)

	stdout, stderr, status = runCode(t, 60*time.Second, code, append([]string{"get", "/other"}, peerArgs(srv)...)...)
	assert.Equal(t, exitHTTPStatus, status)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "p2phttp: peer answered 418 I'm a teapot for /other: no such endpoint\n")
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

func TestServeCtrlCLetsRequestsInFlightFinish(t *testing.T) {
	arrived := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		time.Sleep(time.Second) // Ctrl-C reaches serve meanwhile
		io.WriteString(w, "slow but complete")
	}))
	defer backend.Close()
	srv := testServer(t)
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--proxy", backend.URL}, peerArgs(srv)...)...)
	get := startCode(t, code, append([]string{"get", "/slow"}, peerArgs(srv)...)...)
	select {
	case <-arrived:
	case <-time.After(60 * time.Second):
		t.Fatal("the request never reached the backend")
	}
	require.NoError(t, serve.cmd.Process.Signal(os.Interrupt))
	assert.Equal(t, exitOK, get.wait(30*time.Second))
	stdout, _ := get.output()
	assert.Equal(t, "slow but complete", stdout)
	assert.Equal(t, exitInterrupted, serve.wait(10*time.Second))
}

func TestForwardWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (CI installs it): cannot test forward with a real curl")
	}
	srv := testServer(t)
	dir := t.TempDir()
	content := randomBytes(t, 1<<20)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "file.bin"), content, 0o644))
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--dir", dir}, peerArgs(srv)...)...)
	listen := freeAddr(t, "tcp")
	fwd := startCode(t, code, append([]string{"forward", "--listen", listen}, peerArgs(srv)...)...)
	fwd.waitStderr(`forwarding http://`+regexp.QuoteMeta(listen)+` to the peer`, 60*time.Second)
	base := "http://" + listen

	curlRun := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "30"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "curl %v: %s", args, stderr.String())
		return out
	}

	// Range passes through untouched.
	assert.Equal(t, content[1000:2000], curlRun("-r", "1000-1999", base+"/file.bin"))
	assert.Equal(t, "206", string(curlRun("-o", "/dev/null", "-w", "%{http_code}", "-r", "0-9", base+"/file.bin")))
	// If-Modified-Since with the file's own date gives 304.
	lastMod := regexp.MustCompile(`(?i)last-modified: ([^\r\n]+)`).FindSubmatch(curlRun("-I", base+"/file.bin"))
	require.NotNil(t, lastMod)
	assert.Equal(t, "304", string(curlRun("-o", "/dev/null", "-w", "%{http_code}", "-H", "If-Modified-Since: "+string(lastMod[1]), base+"/file.bin")))
	// Directory listing.
	assert.Contains(t, string(curlRun(base+"/")), `<a href="file.bin">file.bin</a>`)
	// Two requests on one keep-alive connection, then several connections at once, each over its own stream.
	assert.Equal(t, append(append([]byte{}, content...), content...), curlRun(base+"/file.bin", base+"/file.bin"))
	var wg sync.WaitGroup
	results := make([][]byte, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(curl, "-sS", "--max-time", "30", base+"/file.bin")
			results[i], _ = cmd.Output()
		}()
	}
	wg.Wait()
	for i, r := range results {
		assert.True(t, bytes.Equal(content, r), "parallel download %d: %d bytes", i, len(r))
	}

	// When the serving peer stops, forward says so and exits.
	assert.Equal(t, exitInterrupted, serve.interrupt())
	assert.Equal(t, exitFailure, fwd.wait(20*time.Second))
	_, stderr := fwd.output()
	assert.Contains(t, stderr, "\np2phttp: the peer left: ")
}

func TestForwardCtrlC(t *testing.T) {
	srv := testServer(t)
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--dir", t.TempDir()}, peerArgs(srv)...)...)
	fwd := startCode(t, code, append([]string{"forward", "--listen", freeAddr(t, "tcp")}, peerArgs(srv)...)...)
	fwd.waitStderr(`forwarding http://`, 60*time.Second)
	assert.Equal(t, exitInterrupted, fwd.interrupt(), "the usage text promises 130 for Ctrl-C")
	_, stderr := fwd.output()
	assert.True(t, strings.HasSuffix(stderr, "\np2phttp: interrupted\n"), stderr)
	assert.Equal(t, exitInterrupted, serve.interrupt())
	_, stderr = serve.output()
	assert.True(t, strings.HasSuffix(stderr, "\np2phttp: interrupted\n"), stderr)
}

func TestDemo(t *testing.T) {
	stdout, stderr, status := runBinary(t, 60*time.Second, "demo")
	require.Equal(t, exitOK, status, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	for _, want := range []string{
		"[1] signalling server on http://127.0.0.1:",
		"[2] host A holds code ",
		"key confirmed; verifier A ",
		"[3] candidates gathered",
		"    peer A: host 127.0.0.1:",
		"[4] punched path: A 127.0.0.1:",
		"[5] stream 1",
		`both sockets undecided: read state "empty", write state "empty"`,
		"peer A wrote a request first -> client: GET /hello",
		"peer B read a request first -> server; it got GET /hello",
		`peer A got the response: 200 OK, "hello from peer B, the server of this stream; you asked for /hello\n"`,
		"[6] stream 2 (opened by B)",
		"peer B wrote a request first -> client: GET /again",
		"peer A read a request first -> server; it got GET /again",
		`peer B got the response: 200 OK, "hello from peer A, the server of this stream; you asked for /again\n"`,
		"done: one punched path, two streams; each peer became the client by writing first",
	} {
		assert.Contains(t, stdout, want)
	}
	assert.Empty(t, stderr)
}

func TestUnreachableSignalServerFailsFastInOneLine(t *testing.T) {
	dead := "http://" + freeAddr(t, "tcp")
	start := time.Now()
	stdout, stderr, status := runCode(t, 20*time.Second, "7-amber-otter", "get", "/", "--signal", dead, "--udp", "127.0.0.1:0")
	assert.Equal(t, exitFailure, status)
	assert.Empty(t, stdout)
	assert.Equal(t, "p2phttp: cannot reach signalling server "+dead+": connection refused; start one with `p2phttp signal` or pass --signal URL\n", stderr)
	assert.Less(t, time.Since(start), 10*time.Second)
}

func TestPeerNeverCame(t *testing.T) {
	srv := testServer(t)
	stdout, stderr, status := runCode(t, 30*time.Second, "4242-lonely-code", append([]string{"get", "/", "--wait", "1s"}, peerArgs(srv)...)...)
	assert.Equal(t, exitFailure, status)
	assert.Empty(t, stdout)
	assert.Equal(t, "p2phttp: waiting for the peer with code 4242-lonely-code at "+srv.URL+"\n"+`p2phttp: nobody serves code "4242-lonely-code" (waited 1s); run `+"`p2phttp serve`"+` on the other side, check the code and --signal `+srv.URL+", or raise --wait\n", stderr)
}

// Two guests of one code never meet each other: without a serve, both wait for one.
func TestTwoGetsWithoutServeDoNotMeet(t *testing.T) {
	srv := testServer(t)
	code := signal.NewCode()
	other := startCode(t, code, append([]string{"get", "/a", "--wait", "2s"}, peerArgs(srv)...)...)
	_, stderr, status := runCode(t, 60*time.Second, code, append([]string{"get", "/b", "--wait", "2s"}, peerArgs(srv)...)...)
	assert.Equal(t, exitFailure, status)
	assert.Contains(t, stderr, "p2phttp: nobody serves code ")
	assert.Equal(t, exitFailure, other.wait(30*time.Second))
}

func TestBadCodeIsAUsageError(t *testing.T) {
	_, stderr, status := runBinary(t, 10*time.Second, "get", "amber-otter", "/")
	assert.Equal(t, exitUsage, status)
	assert.Equal(t, "p2phttp get: invalid code: \"amber-otter\" does not start with a nameplate (a number, as the 7 of 7-amber-otter); run `p2phttp get --help`\n", stderr)
	_, stderr, status = runBinary(t, 10*time.Second, "serve", "--dir", ".", "07-amber-otter")
	assert.Equal(t, exitUsage, status)
	assert.Contains(t, stderr, "leading zero")
}

// One serve, 20 guests at once: every one is served, byte-exact, while serve keeps accepting.
func TestManyGetsAgainstOneServe(t *testing.T) {
	const gets = 20
	srv := testServer(t)
	dir := t.TempDir()
	content := randomBytes(t, 256<<10)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blob.bin"), content, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello over p2p\n"), 0o644))
	code := signal.NewCode()
	serve := start(t, append([]string{"serve", "--dir", dir, code}, peerArgs(srv)...)...)
	type result struct {
		stdout, stderr string
		status         int
	}
	results := make(chan result, gets)
	for i := range gets {
		go func() {
			path := "/hello.txt"
			if i%2 == 1 {
				path = "/blob.bin"
			}
			stdout, stderr, status := runBinary(t, 120*time.Second, append([]string{"get", code, path}, peerArgs(srv)...)...)
			results <- result{stdout, stderr, status}
		}()
	}
	for range gets {
		r := <-results
		require.Equal(t, exitOK, r.status, r.stderr)
		if r.stdout != "hello over p2p\n" {
			assert.True(t, r.stdout == string(content), "a get received %d bytes, not the file", len(r.stdout))
		}
	}
	assert.Equal(t, exitInterrupted, serve.interrupt())
	_, stderr := serve.output()
	assert.Equal(t, gets, strings.Count(stderr, "connected: direct path"), "serve met every guest")
}

// --verify prints the same string on both sides; a wrong code fails cleanly and, after 3, serve prints a new code.
func TestVerifyAndWrongCode(t *testing.T) {
	srv := testServer(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi\n"), 0o644))
	serve := start(t, append([]string{"serve", "--dir", dir, "--verify"}, peerArgs(srv)...)...)
	m := serve.waitStderr(`with code (\d+)-(\S+)\n`, 10*time.Second)
	code, plate := m[1]+"-"+m[2], m[1]

	stdout, stderr, status := runBinary(t, 60*time.Second, append([]string{"get", code, "/hello.txt", "--verify"}, peerArgs(srv)...)...)
	require.Equal(t, exitOK, status, stderr)
	assert.Equal(t, "hi\n", stdout)
	gv := regexp.MustCompile(`verify with the other side \(guest\): ([a-z]+(-[a-z]+){3})\n`).FindStringSubmatch(stderr)
	require.NotNil(t, gv, stderr)
	serve.waitStderr(`verify with the other side \(host\): `+gv[1]+`\n`, 10*time.Second)
	// Both sides name the same cipher, one this machine offers (both peers run here).
	gc := regexp.MustCompile(`sealed with (\S+)\n`).FindStringSubmatch(stderr)
	require.NotNil(t, gc, stderr)
	assert.Equal(t, string(utp.Ciphers()[0]), gc[1])
	serve.waitStderr(`sealed with `+regexp.QuoteMeta(gc[1])+`\n`, 10*time.Second)

	for i := range 3 {
		_, stderr, status := runBinary(t, 60*time.Second, append([]string{"get", plate + "-wrong-words", "/hello.txt"}, peerArgs(srv)...)...)
		assert.Equal(t, exitFailure, status, "wrong guess %d", i)
		assert.Contains(t, stderr, `p2phttp: code "`+plate+`-wrong-words" is wrong`)
	}
	m = serve.waitStderr(`that code is retired, the new code is (\S+)\n`, 20*time.Second)
	fresh := m[1]
	assert.NotEqual(t, code, fresh)
	stdout, stderr, status = runBinary(t, 60*time.Second, append([]string{"get", fresh, "/hello.txt"}, peerArgs(srv)...)...)
	require.Equal(t, exitOK, status, stderr)
	assert.Equal(t, "hi\n", stdout)
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

func TestCtrlCWhileWaitingForPeer(t *testing.T) {
	srv := testServer(t)
	get := startCode(t, "4243-nobody-comes", append([]string{"get", "/"}, peerArgs(srv)...)...)
	// Said at once, so that a mistyped code does not sit there silently.
	get.waitStderr(`^p2phttp: waiting for the peer with code 4243-nobody-comes at `+regexp.QuoteMeta(srv.URL)+`\n$`, 10*time.Second)
	require.NoError(t, get.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, exitInterrupted, get.wait(10*time.Second))
	_, stderr := get.output()
	assert.Equal(t, "p2phttp: waiting for the peer with code 4243-nobody-comes at "+srv.URL+"\np2phttp: interrupted\n", stderr)
}
