package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/signal"
)

func testEnv(env map[string]string) (*cliEnv, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return &cliEnv{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""),
		getenv: func(k string) string { return env[k] }}, &stdout, &stderr
}

func TestParseAllowsFlagsAfterArguments(t *testing.T) {
	cases := []struct {
		args    []string
		wantPos []string
		wantO   string
	}{
		{[]string{"CODE", "/path", "-o", "out"}, []string{"CODE", "/path"}, "out"},
		{[]string{"-o", "out", "CODE", "/path"}, []string{"CODE", "/path"}, "out"},
		{[]string{"CODE", "-o=out", "/path"}, []string{"CODE", "/path"}, "out"},
		{[]string{"CODE", "--", "-dash-path"}, []string{"CODE", "-dash-path"}, ""},
		{[]string{}, nil, ""},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			env, _, _ := testEnv(nil)
			fs := newFlagSet("get", getHelp)
			o := fs.String("o", "", "")
			pos, err := fs.parse(env, c.args)
			require.NoError(t, err)
			assert.Equal(t, c.wantPos, pos)
			assert.Equal(t, c.wantO, *o)
		})
	}
}

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			env, stdout, stderr := testEnv(nil)
			code := run(context.Background(), []string{c.name, "--help"}, env)
			assert.Equal(t, exitOK, code)
			assert.Empty(t, stderr.String())
			out := stdout.String()
			assert.Contains(t, out, "Usage: p2phttp "+c.name)
			assert.Contains(t, out, "\nFlags:\n")
			assert.Contains(t, out, "\nExamples:\n  p2phttp "+c.name)
			assert.Contains(t, out, "-v, --verbose")
		})
	}
}

func TestMainUsage(t *testing.T) {
	env, stdout, stderr := testEnv(nil)
	assert.Equal(t, exitUsage, run(context.Background(), nil, env))
	assert.Empty(t, stdout.String())
	assert.Contains(t, stderr.String(), "Commands:\n  signal   run the signalling server")

	env, stdout, stderr = testEnv(nil)
	assert.Equal(t, exitOK, run(context.Background(), []string{"--help"}, env))
	assert.Empty(t, stderr.String())
	for _, c := range commands {
		assert.Contains(t, stdout.String(), "\n  "+c.name+" ")
	}

	env, stdout, _ = testEnv(nil)
	assert.Equal(t, exitOK, run(context.Background(), []string{"help", "forward"}, env))
	assert.Contains(t, stdout.String(), "Usage: p2phttp forward [--listen ADDR]")
}

func TestUsageErrorsAreOneLineWithExit2(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `p2phttp: unknown command "nope"; run ` + "`p2phttp --help`" + ` for the list`},
		{[]string{"get"}, `p2phttp get: expected PATH (or CODE PATH), got []; run ` + "`p2phttp get --help`"},
		{[]string{"get", "/x"}, "p2phttp get: no code: set P2PHTTP_CODE=CODE, pipe the code on stdin, or run on a terminal to be asked for it; run `p2phttp get --help`"},
		{[]string{"get", "/x", "-O", "-o", "f"}, "p2phttp get: pass either -o FILE or -O, not both; run `p2phttp get --help`"},
		{[]string{"get", "/", "-O"}, `p2phttp get: -O cannot name a file after "/"; give one with -o FILE; run ` + "`p2phttp get --help`"},
		{[]string{"get", "/x", "-o", dir}, "p2phttp get: -o " + dir + " is a folder; name a file in it (-o " + filepath.Join(dir, "FILE") + ") or use -O to name the file after PATH; run `p2phttp get --help`"},
		{[]string{"get", "/x", "-o", filepath.Join(dir, "nope", "f")}, "p2phttp get: -o " + filepath.Join(dir, "nope", "f") + ": the folder " + filepath.Join(dir, "nope") + " does not exist; run `p2phttp get --help`"},
		{[]string{"get", "/x", "--sigal", "http://x"}, "p2phttp get: flag provided but not defined: -sigal (did you mean --signal?); run `p2phttp get --help`"},
		{[]string{"get", "/x", "--timeout", "-1s"}, "p2phttp get: --timeout must not be negative; run `p2phttp get --help`"},
		{[]string{"serv"}, `p2phttp: unknown command "serv" (did you mean "serve"?); run ` + "`p2phttp --help`" + ` for the list`},
		{[]string{"serve", "--dir", dir, "--max-streams", "0"}, "p2phttp serve: --max-streams must be at least 1; run `p2phttp serve --help`"},
		{[]string{"forward", "a", "b"}, `p2phttp forward: expected no argument (or one CODE), got ["a" "b"]; run ` + "`p2phttp forward --help`"},
		{[]string{"get", "CODE", "/", "--bogus"}, "p2phttp get: flag provided but not defined: -bogus; run `p2phttp get --help`"},
		{[]string{"serve", "--dir", dir, "--proxy", "http://x"}, "p2phttp serve: pass either --dir or --proxy, not both; run `p2phttp serve --help`"},
		{[]string{"serve"}, "p2phttp serve: pass --dir DIR to share a folder or --proxy URL to share a local web server; run `p2phttp serve --help`"},
		{[]string{"serve", "--proxy", "ftp://x"}, `p2phttp serve: --proxy "ftp://x" is not an http:// or https:// URL; run ` + "`p2phttp serve --help`"},
		{[]string{"serve", "--dir", filepath.Join(dir, "missing")}, "p2phttp serve: --dir stat " + filepath.Join(dir, "missing") + ": no such file or directory; run `p2phttp serve --help`"},
		{[]string{"forward", "CODE", "--signal", "127.0.0.1:8080"}, `p2phttp forward: --signal "127.0.0.1:8080" is not an http:// or https:// URL; run ` + "`p2phttp forward --help`"},
		{[]string{"get", "C", "/", "--stun", "nohostport"}, `p2phttp get: --stun "nohostport" is not HOST:PORT; run ` + "`p2phttp get --help`"},
		{[]string{"signal", "--http", "8080"}, `p2phttp signal: --http "8080" is not HOST:PORT (or :PORT); run ` + "`p2phttp signal --help`"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			env, stdout, stderr := testEnv(nil)
			assert.Equal(t, exitUsage, run(context.Background(), c.args, env))
			assert.Empty(t, stdout.String())
			assert.Equal(t, c.want+"\n", stderr.String())
		})
	}
}

func TestPeerFlagsFromEnvironment(t *testing.T) {
	env, _, _ := testEnv(map[string]string{"P2PHTTP_SIGNAL": "https://sig.example", "P2PHTTP_STUN": "stun.example:3478"})
	fs := newFlagSet("get", getHelp)
	var pf peerFlags
	pf.register(fs, env, time.Minute)
	_, err := fs.parse(env, nil)
	require.NoError(t, err)
	cfg := pf.config("7-amber-otter", nil)
	assert.Equal(t, "https://sig.example", cfg.SignalURL)
	assert.Equal(t, "stun.example:3478", cfg.STUNAddr)
	assert.Equal(t, time.Minute, cfg.PeerTimeout)
	assert.Equal(t, "p2phttp get / --signal https://sig.example --stun stun.example:3478", pf.otherSide("get", "/"))

	// A flag beats the environment; defaults apply without either.
	_, err = fs.parse(env, []string{"--signal", "http://other:1"})
	require.NoError(t, err)
	assert.Equal(t, "http://other:1", pf.signalURL)
	env, _, _ = testEnv(nil)
	fs = newFlagSet("get", getHelp)
	pf = peerFlags{}
	pf.register(fs, env, time.Minute)
	assert.Equal(t, defaultSignalURL, pf.signalURL)
	assert.Equal(t, "p2phttp forward", pf.otherSide("forward", ""))
}

func TestExplainSaysWhatToTryNext(t *testing.T) {
	pf := &peerFlags{signalURL: "http://127.0.0.1:8080", udpAddr: ":0", wait: 2 * time.Minute}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		err  error
		want string
	}{
		{&rendezvous.Error{Step: rendezvous.StepSignal, Reason: rendezvous.ErrSignalUnreachable, Err: refused},
			"cannot reach signalling server http://127.0.0.1:8080: connection refused; start one with `p2phttp signal` or pass --signal URL"},
		{&rendezvous.Error{Step: rendezvous.StepSignal, Reason: rendezvous.ErrPeerNeverCame, Err: context.DeadlineExceeded},
			"nobody serves code \"7-amber-otter\" (waited 2m0s); run `p2phttp serve` on the other side, check the code and --signal http://127.0.0.1:8080, or raise --wait"},
		{&rendezvous.Error{Step: rendezvous.StepSignal, Reason: rendezvous.ErrWrongCode, Err: signal.ErrConfirmFailed},
			`code "7-amber-otter" is wrong: the peer holding its nameplate could not confirm the key; check the code with the other side (after a few wrong tries serve picks a new code and prints it)`},
		{&rendezvous.Error{Step: rendezvous.StepPunch, Reason: rendezvous.ErrPunchFailed, Err: errors.New("no answer from 3 pairs")},
			"could not punch a path to the peer: no answer from 3 pairs; both NATs may rewrite ports per destination (symmetric NAT): try another network, or forward a fixed --udp port to one peer"},
		{&rendezvous.Error{Step: rendezvous.StepGather, Reason: rendezvous.ErrGatherFailed, Err: os.NewSyscallError("bind", syscall.EADDRINUSE)},
			"cannot set up the local UDP socket :0: address already in use; check --udp"},
		{&rendezvous.Error{Step: rendezvous.StepSignal, Err: fmt.Errorf("%w: the host offered none (it runs an older p2phttp?)", signal.ErrNoCommonCipher)},
			"the peers have no path cipher in common: the host offered none (it runs an older p2phttp?); run the same p2phttp version on both sides"},
	}
	for _, c := range cases {
		got := explain(fmt.Errorf("wrapped: %w", &meetError{flags: pf, code: "7-amber-otter", err: c.err}))
		assert.Equal(t, c.want, got)
		assert.NotContains(t, got, "\n")
	}
}

func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	start := time.Unix(1000, 0)
	now := start
	p := newProgress(&out, 100<<20)
	p.start, p.now = start, func() time.Time { return now }
	now = start.Add(2 * time.Second)
	p.Write(make([]byte, 10<<20))
	assert.Equal(t, "10.0 MiB / 100.0 MiB  10%  5.0 MiB/s  ETA 18s", p.line(now))
	assert.Equal(t, "\r10.0 MiB / 100.0 MiB  10%  5.0 MiB/s  ETA 18s\x1b[K", out.String())
	// Redraws are rate limited.
	now = now.Add(50 * time.Millisecond)
	p.Write(make([]byte, 1))
	assert.Equal(t, 1, strings.Count(out.String(), "\r"))
	p.n = 100 << 20
	now = start.Add(4 * time.Second)
	p.Done()
	assert.True(t, strings.HasSuffix(out.String(), "\r100.0 MiB / 100.0 MiB  100%  25.0 MiB/s  ETA 0s\x1b[K\n"), out.String())

	unknown := newProgress(io.Discard, -1)
	unknown.start = start
	unknown.n = 1536
	assert.Equal(t, "1.5 KiB  768 B/s", unknown.line(start.Add(2*time.Second)))
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB", 1 << 40: "1.0 TiB"} {
		assert.Equal(t, want, formatBytes(n), n)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f), "a regular file")
	assert.False(t, isTerminal(&bytes.Buffer{}), "not a file")
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer null.Close()
	assert.False(t, isTerminal(null), "/dev/null is a character device but no terminal")
}

func TestDirHandler(t *testing.T) {
	dir := t.TempDir()
	content := bytes.Repeat([]byte("0123456789"), 1000)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data.bin"), content, 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "a.txt"), []byte("a"), 0o644))
	outside := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(outside, []byte("secret"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "escape")))

	h, what, err := newHandler(dir, "", false, discardLogger())
	require.NoError(t, err)
	assert.Equal(t, "the files under "+dir, what)
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		resp, body := fetch(t, srv, path, hdr)
		return resp, []byte(body)
	}
	resp, body := get("/data.bin", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, content, body)

	resp, body = get("/data.bin", map[string]string{"Range": "bytes=5-14"})
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, "bytes 5-14/10000", resp.Header.Get("Content-Range"))
	assert.Equal(t, content[5:15], body)

	lastMod := resp.Header.Get("Last-Modified")
	require.NotEmpty(t, lastMod)
	resp, body = get("/data.bin", map[string]string{"If-Modified-Since": lastMod})
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	assert.Empty(t, body)

	resp, body = get("/sub/", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `<a href="a.txt">a.txt</a>`)

	resp, body = get("/escape", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "a symlink must not lead outside --dir, nor show it exists")
	assert.Equal(t, "404 page not found\n", string(body))

	resp, _ = get("/missing", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestProxyHandler(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "yes")
		fmt.Fprintf(w, "backend saw %s %s host=%s xff=%s", r.Method, r.URL.RequestURI(), r.Host, r.Header.Get("X-Forwarded-For"))
	}))
	h, what, err := newHandler("", backend.URL+"/base", false, discardLogger())
	require.NoError(t, err)
	assert.Equal(t, "the web server at "+backend.URL+"/base", what)
	front := httptest.NewServer(h)
	defer front.Close()

	resp, err := http.Get(front.URL + "/api?q=1")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "yes", resp.Header.Get("X-Backend"))
	assert.Equal(t, "backend saw GET /base/api?q=1 host="+strings.TrimPrefix(backend.URL, "http://")+" xff=127.0.0.1", string(body))

	backend.Close()
	resp, err = http.Get(front.URL + "/api")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Contains(t, string(body), "p2phttp: the web server behind this peer did not answer")
}
