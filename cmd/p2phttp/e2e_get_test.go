//go:build unix

package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
)

// TestGetResumesAfterCtrlC interrupts a download with SIGINT part way, then runs the same command again: only the
// missing bytes travel (serve's access log says how many it sent) and the file comes out whole.
func TestGetResumesAfterCtrlC(t *testing.T) {
	srv := testServer(t)
	dir := t.TempDir()
	content := randomBytes(t, 96<<20)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "big.bin"), content, 0o644))
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--dir", dir}, peerArgs(srv)...)...)
	out := filepath.Join(t.TempDir(), "big.bin")
	args := append([]string{"get", "/big.bin", "-o", out}, peerArgs(srv)...)

	get := startCode(t, code, args...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if fi, err := os.Stat(out + partSuffix); err == nil && fi.Size() >= 4<<20 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no 4 MiB arrived within a minute")
		select {
		case <-get.done:
			_, stderr := get.output()
			t.Fatalf("get ended before it could be interrupted:\n%s", stderr)
		case <-time.After(2 * time.Millisecond):
		}
	}
	assert.Equal(t, exitInterrupted, get.interrupt())
	part, err := os.ReadFile(out + partSuffix)
	require.NoError(t, err)
	kept := int64(len(part))
	require.Less(t, kept, int64(len(content)), "interrupted before the end")
	assert.Equal(t, content[:kept], part, "the part file holds the first bytes")
	assert.FileExists(t, out+metaSuffix)
	assert.NoFileExists(t, out)
	_, stderr := get.output()
	assert.Regexp(t, `\np2phttp: kept [0-9.]+ MiB in `+regexp.QuoteMeta(out+partSuffix)+
		"; run the same command again to resume\np2phttp: interrupted\n$", stderr)

	_, stderr, status := runCode(t, 60*time.Second, code, args...)
	require.Equal(t, exitOK, status, stderr)
	assert.Contains(t, stderr, fmt.Sprintf("\np2phttp: resuming %s at %s (%.1f%%)\n", out, formatBytes(kept),
		float64(kept)*100/float64(len(content))))
	assert.Regexp(t, `\np2phttp: saved `+regexp.QuoteMeta(out)+": "+regexp.QuoteMeta(formatBytes(int64(len(content))-kept))+
		` in [0-9.]+m?s \([0-9.]+ [KMG]iB/s\), resumed at `+regexp.QuoteMeta(formatBytes(kept))+"\n$", stderr)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, len(got) == len(content) && string(got) == string(content), "resumed file differs (%d bytes)", len(got))
	assert.NoFileExists(t, out+partSuffix)
	assert.NoFileExists(t, out+metaSuffix)

	serve.waitStderr(`GET /big\.bin 206 `+strconv.FormatInt(int64(len(content))-kept, 10)+` bytes`, 20*time.Second)
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

// TestGetNeverReplacesSpecialFilesOrSymlinks writes into a FIFO, through a symlink and into a device node, and
// checks each is still what it was.
func TestGetNeverReplacesSpecialFilesOrSymlinks(t *testing.T) {
	srv := testServer(t)
	dir := t.TempDir()
	content := randomBytes(t, 1<<20)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data.bin"), content, 0o644))
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--dir", dir}, peerArgs(srv)...)...)
	tmp := t.TempDir()
	get := func(out string) {
		t.Helper()
		_, stderr, status := runCode(t, 60*time.Second, code, append([]string{"get", "/data.bin", "-o", out}, peerArgs(srv)...)...)
		require.Equal(t, exitOK, status, stderr)
		assert.NoFileExists(t, out+partSuffix)
	}

	fifo := filepath.Join(tmp, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	read := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			read <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		read <- b
	}()
	get(fifo)
	assert.Equal(t, content, <-read, "the reader of the FIFO got the body")
	fi, err := os.Lstat(fifo)
	require.NoError(t, err)
	assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type(), "still a FIFO")

	target := filepath.Join(tmp, "target")
	require.NoError(t, os.WriteFile(target, []byte("old"), 0o644))
	link := filepath.Join(tmp, "link")
	require.NoError(t, os.Symlink(target, link))
	get(link)
	fi, err = os.Lstat(link)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSymlink, fi.Mode().Type(), "still a symlink")
	dest, err := os.Readlink(link)
	require.NoError(t, err)
	assert.Equal(t, target, dest)
	got, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, content, got, "the symlink's target got the body")

	// A null device of the test's own, so that a regression cannot clobber the machine's /dev/null.
	null := filepath.Join(tmp, "null")
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Logf("cannot make a device node (%v): the device case needs root", err)
	} else {
		get(null)
		fi, err = os.Lstat(null)
		require.NoError(t, err)
		assert.Equal(t, os.ModeDevice|os.ModeCharDevice, fi.Mode().Type(), "still a character device")
	}
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

// TestGetTimeoutOnASilentPeer covers a peer that never answers and one that stops half way.
func TestGetTimeoutOnASilentPeer(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/half" {
			w.Header().Set("Content-Length", "2000000")
			w.Write(make([]byte, 1000000))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer backend.Close()
	defer close(release) // before Close, which waits for the handlers
	srv := testServer(t)
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--proxy", backend.URL}, peerArgs(srv)...)...)

	stdout, stderr, status := runCode(t, 60*time.Second, code, append([]string{"get", "/never", "--timeout", "1s"}, peerArgs(srv)...)...)
	assert.Equal(t, exitFailure, status)
	assert.Empty(t, stdout)
	assert.Regexp(t, "\np2phttp: GET /never from the peer failed: the peer stopped answering: nothing came for 1s \\(--timeout\\)\n$", stderr)

	out := filepath.Join(t.TempDir(), "half")
	_, stderr, status = runCode(t, 60*time.Second, code, append([]string{"get", "/half", "-o", out, "--timeout", "1s"}, peerArgs(srv)...)...)
	assert.Equal(t, exitFailure, status)
	assert.Regexp(t, "\np2phttp: kept 976.6 KiB in "+regexp.QuoteMeta(out+partSuffix)+"; run the same command again to resume\n"+
		"p2phttp: transfer failed after 976.6 KiB: the peer stopped answering: nothing came for 1s \\(--timeout\\)\n$", stderr)
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

// TestGetEscapesWhatThePeerSays: an error body cannot drive the terminal.
func TestGetEscapesWhatThePeerSays(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "\x1b]0;pwned\x07\x1b[2Jgone\u202e")
	}))
	defer backend.Close()
	srv := testServer(t)
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--proxy", backend.URL}, peerArgs(srv)...)...)
	_, stderr, status := runCode(t, 60*time.Second, code, append([]string{"get", "/x"}, peerArgs(srv)...)...)
	assert.Equal(t, exitHTTPStatus, status)
	assert.Contains(t, stderr, `p2phttp: peer answered 500 Internal Server Error for /x: \x1b]0;pwned\x07\x1b[2Jgone\u202e`+"\n")
	assert.NotContains(t, stderr, "\x1b")
	assert.NotContains(t, stderr, "\u202e")
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

// TestVerboseCleanExitLogsNoFailure: closing a session that worked is not a failure, even at debug level.
func TestVerboseCleanExitLogsNoFailure(t *testing.T) {
	srv := testServer(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644))
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--dir", dir}, peerArgs(srv)...)...)
	for range 3 {
		stdout, stderr, status := runCode(t, 60*time.Second, code, append([]string{"get", "/a.txt", "-v"}, peerArgs(srv)...)...)
		require.Equal(t, exitOK, status, stderr)
		assert.Equal(t, "a", stdout)
		assert.Contains(t, stderr, "level=DEBUG", "-v logs each step")
		assert.NotContains(t, stderr, "stream failed")
		assert.NotContains(t, stderr, "closed network connection")
		assert.NotContains(t, stderr, "level=WARN")
	}
	assert.Equal(t, exitInterrupted, serve.interrupt())
}
