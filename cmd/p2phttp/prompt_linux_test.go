//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	fd := int(m.Fd())
	require.NoError(t, unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	require.NoError(t, err)
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	return m, s
}

// TestGetAsksForTheCodeOnATerminal types a code with Tab completion into the real binary on a pseudo-terminal.
func TestGetAsksForTheCodeOnATerminal(t *testing.T) {
	srv := testServer(t)
	master, tty := openPTY(t)
	cmd := exec.Command(binary, append([]string{"get", "/x", "--wait", "1s"}, peerArgs(srv)...)...)
	cmd.Env = append(os.Environ(), "P2PHTTP_SIGNAL=", "P2PHTTP_STUN=", "P2PHTTP_CODE=")
	cmd.Stdin, cmd.Stderr = tty, tty
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	require.NoError(t, cmd.Start())
	tty.Close()

	var mu sync.Mutex
	var screen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitFor := func(s string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			ok := strings.Contains(screen.String(), s)
			mu.Unlock()
			if ok {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the terminal never showed %q:\n%q", s, screen.String())
	}
	waitFor("Code (Tab completes the words): ")
	_, err := master.Write([]byte("7-amb\t"))
	require.NoError(t, err)
	waitFor("7-amber-")
	_, err = master.Write([]byte("ott\t\r"))
	require.NoError(t, err)
	waitFor("p2phttp: waiting for the peer with code 7-amber-otter at " + srv.URL)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("get did not give up after --wait")
	}
	assert.Equal(t, exitFailure, cmd.ProcessState.ExitCode())
	waitFor(`nobody serves code "7-amber-otter" (waited 1s)`)
	assert.Empty(t, stdout.String())
	mu.Lock()
	defer mu.Unlock()
	assert.NotContains(t, screen.String(), "warning", "a typed code is neither in argv nor mistyped")
}

// TestCtrlCAtTheCodePrompt: the terminal is in raw mode while the code is typed, so Ctrl-C arrives as a byte; it
// still interrupts (exit 130), and the terminal is left as it was.
func TestCtrlCAtTheCodePrompt(t *testing.T) {
	master, tty := openPTY(t)
	before, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	require.NoError(t, err)
	require.NotZero(t, before.Lflag&unix.ICANON, "a new terminal starts in canonical mode")
	p := &proc{t: t, cmd: exec.Command(binary, "get", "/x", "--signal", "http://127.0.0.1:1"), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "P2PHTTP_CODE=")
	p.cmd.Stdin, p.cmd.Stderr = tty, tty
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	var screen bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(screen.String(), "Code (Tab completes the words): ") {
		master.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := master.Read(buf)
		require.NoError(t, err, "screen so far: %q", screen.String())
		screen.Write(buf[:n])
	}
	_, err = master.Write([]byte("7-am\x03"))
	require.NoError(t, err)
	assert.Equal(t, exitInterrupted, p.wait(30*time.Second))
	after, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	require.NoError(t, err)
	assert.Equal(t, *before, *after, "the terminal's mode is restored")
	tty.Close()
	rest := make([]byte, 4096)
	master.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := master.Read(rest)
	screen.Write(rest[:n])
	assert.Contains(t, screen.String(), "p2phttp: interrupted")
}
