package signalserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testRedis is a redis-server of the test's own on a loopback port, without
// persistence, in a temporary directory.
type testRedis struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
	URL  string
}

// startRedis starts redis-server. Without it the test skips, except in CI
// (CI=true), where it fails: .ci/run installs it.
func startRedis(t testing.TB) *testRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		require.NotEqual(t, "true", os.Getenv("CI"), "redis-server not installed (Debian package redis-server); CI must have it")
		t.Skip("redis-server not installed (apt-get install redis-server); skipping the Redis tests")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &testRedis{t: t, port: port, dir: t.TempDir(), URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port)}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *testRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "yes", "--loglevel", "warning")
	require.NoError(r.t, r.cmd.Start())
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err == nil {
			c.Close()
			return
		}
		require.False(r.t, time.Now().After(deadline), "redis-server on port %d did not come up: %v", r.port, err)
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops redis-server at once (SIGKILL: nothing is saved).
func (r *testRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// store connects a RedisStore (one server instance's) to it.
func (r *testRedis) store(t testing.TB) *RedisStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := NewRedisStore(ctx, r.URL, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}
