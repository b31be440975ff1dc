//go:build unix

package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResolveOutput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte("old"), 0o644))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	require.NoError(t, os.Symlink("file", filepath.Join(dir, "link")))                      // relative
	require.NoError(t, os.Symlink(filepath.Join(dir, "link"), filepath.Join(dir, "chain"))) // to a symlink
	require.NoError(t, os.Symlink("new", filepath.Join(dir, "dangling")))                   // target not there yet
	require.NoError(t, os.Symlink("fifo", filepath.Join(dir, "tofifo")))
	require.NoError(t, os.Symlink("loop", filepath.Join(dir, "loop")))
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer ln.Close()

	cases := []struct {
		name, arg   string
		wantPath    string
		wantSpecial bool
		wantErr     string
	}{
		{"stdout", "", "", false, ""},
		{"dash is stdout", "-", "", false, ""},
		{"new file", filepath.Join(dir, "new"), filepath.Join(dir, "new"), false, ""},
		{"regular file", file, file, false, ""},
		{"symlink followed", filepath.Join(dir, "link"), file, false, ""},
		{"symlink chain followed", filepath.Join(dir, "chain"), file, false, ""},
		{"dangling symlink creates its target", filepath.Join(dir, "dangling"), filepath.Join(dir, "new"), false, ""},
		{"fifo written into", fifo, fifo, true, ""},
		{"symlink to fifo", filepath.Join(dir, "tofifo"), fifo, true, ""},
		{"dev null written into", os.DevNull, os.DevNull, true, ""},
		{"folder", dir, "", false, "-o " + dir + " is a folder; name a file in it (-o " + filepath.Join(dir, "FILE") + ") or use -O to name the file after PATH"},
		{"dot", ".", "", false, "-o . is a folder; name a file in it (-o FILE) or use -O to name the file after PATH"},
		{"missing folder", filepath.Join(dir, "no", "f"), "", false, "-o " + filepath.Join(dir, "no", "f") + ": the folder " + filepath.Join(dir, "no") + " does not exist"},
		{"file as folder", filepath.Join(file, "f"), "", false, "-o " + filepath.Join(file, "f") + ": " + file + " is not a folder"},
		{"socket", sock, "", false, "-o " + sock + " is a socket, not something get can write to"},
		{"symlink loop", filepath.Join(dir, "loop"), "", false, "-o " + filepath.Join(dir, "loop") + ": too many levels of symbolic links"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := resolveOutput(c.arg)
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Equal(t, c.wantErr, err.Error())
				var ue usageError
				assert.ErrorAs(t, err, &ue, "a bad -o is a usage error, found before meeting")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.wantPath, o.path)
			assert.Equal(t, c.wantSpecial, o.special)
			assert.Equal(t, c.arg == "" || c.arg == "-", o.stdout())
		})
	}
}

func TestOpenSpecialGivesUpOnAFIFOWithoutReader(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := openSpecial(ctx, fifo)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	fi, err := os.Lstat(fifo)
	require.NoError(t, err)
	assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type(), "the FIFO is still a FIFO")
}

func TestNameFromPath(t *testing.T) {
	for p, want := range map[string]string{"/a/b.iso": "b.iso", "/a/b/": "b", "/x y.txt": "x y.txt"} {
		got, err := nameFromPath(p)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	for _, p := range []string{"/", "/..", "/a/..", `/a\b`} {
		_, err := nameFromPath(p)
		assert.Error(t, err, p)
	}
}

func TestWatchdogIgnoresTimeSpentWriting(t *testing.T) {
	fired := make(chan struct{}, 1)
	wd := newWatchdog(50*time.Millisecond, func() { fired <- struct{}{} })
	defer wd.stop()
	w := wd.writer(writerFunc(func(p []byte) (int, error) {
		time.Sleep(200 * time.Millisecond) // a slow reader at the other end of a FIFO
		return len(p), nil
	}))
	_, err := w.Write([]byte("x"))
	require.NoError(t, err)
	select {
	case <-fired:
		t.Fatal("the watchdog fired while the write blocked")
	default:
	}
	select {
	case <-fired: // silent again afterwards: it fires
	case <-time.After(10 * time.Second):
		t.Fatal("the watchdog never fired")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
