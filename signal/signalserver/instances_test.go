package signalserver

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/syncbuf"
	"github.com/p2phttp/p2phttp/signal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// childEnv makes the test binary a server instance on the Redis it names:
// TestMain serves on a loopback port, prints "listening ADDR" and runs until
// it is killed. A killed child dies as a crashed instance would: no
// hand-back, nothing recorded.
const childEnv = "P2PHTTP_SIGNALSERVER_TEST_INSTANCE"

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		runChild(url)
		return
	}
	os.Exit(m.Run())
}

func runChild(url string) {
	ctx := context.Background()
	st, err := NewRedisStore(ctx, url, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	cfg := testConfig()
	cfg.Store, cfg.PollWait = st, 20*time.Second
	fmt.Println("listening", l.Addr())
	New(cfg).Serve(ctx, l)
}

// startChild starts an instance in a process of its own and returns its
// URL and a function that kills it (SIGKILL).
func startChild(t *testing.T, redisURL string) (string, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+redisURL)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	var once sync.Once
	kill := func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	t.Cleanup(kill)
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	require.NoError(t, err, "instance did not start: %q", line)
	require.True(t, ok, "instance did not start: %q", line)
	return "http://" + addr, kill
}

// TestTwoInstancesMeet: a host on one instance and a guest on another meet
// and exchange messages through either instance.
func TestTwoInstancesMeet(t *testing.T) {
	rs := startRedis(t)
	cfg := testConfig()
	cfg.Store = rs.store(t)
	a := startServer(t, cfg)
	cfg.Store = rs.store(t)
	b := startServer(t, cfg)
	host, guest := signal.NewPeerID(), signal.NewPeerID()
	m := meet(t, a.URL, b.URL, "4", host, guest)
	// The guest's recv parks on b; the host's send through a wakes it.
	rc := asyncPost(b.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: guest})
	waitParked(t, b.Server, 1)
	wantStatus(t, "send", post(a.URL, signal.SendPath, m, signal.SendRequest{PeerID: host, Body: []byte("hi")}), http.StatusOK)
	r := recvFrom(t, rc, "recv")
	wantStatus(t, "recv", r, http.StatusOK)
	require.Contains(t, string(r.body), `"body":"aGk="`, "recv")
	assert.Equal(t, 1.0, metric(t, a.URL, "p2phttp_signal_claims_total"), "a claims_total")
	assert.Equal(t, 1.0, metric(t, b.URL, "p2phttp_signal_meets_total"), "b meets_total")
}

// TestKilledInstance: an instance dies (SIGKILL) while a host and a guest's
// recv wait on it; their next polls, through another instance, carry on:
// the claim, the meeting and its messages are intact.
func TestKilledInstance(t *testing.T) {
	rs := startRedis(t)
	aURL, kill := startChild(t, rs.URL)
	cfg := testConfig()
	cfg.Store = rs.store(t)
	b := startServer(t, cfg)

	host, g1 := signal.NewPeerID(), signal.NewPeerID()
	m := meet(t, aURL, b.URL, "6", host, g1)
	wantStatus(t, "g1 sends", post(aURL, signal.SendPath, m, signal.SendRequest{PeerID: g1, Body: []byte("msg0")}), http.StatusOK)
	hc := asyncPost(aURL, signal.HostPath, "6", hostReq(host))
	gc := asyncPost(aURL, signal.RecvPath, m, signal.RecvRequest{PeerID: g1})
	time.Sleep(200 * time.Millisecond) // both park on a
	kill()
	killed := recvFrom(t, hc, "host on the killed instance")
	require.Error(t, killed.err, "host poll on the killed instance answered %d %s", killed.status, killed.body)
	recvFrom(t, gc, "guest on the killed instance")

	// Both come back through b within the grace.
	hc = asyncPost(b.URL, signal.HostPath, "6", hostReq(host))
	gc = asyncPost(b.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: g1})
	waitParked(t, b.Server, 2)
	r := post(b.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: host})
	wantStatus(t, "host reads the message sent through the dead instance", r, http.StatusOK)
	require.Contains(t, string(r.body), `"body":"bXNnMA=="`, "host recv")
	wantStatus(t, "host replies", post(b.URL, signal.SendPath, m, signal.SendRequest{PeerID: host, Body: []byte("re")}), http.StatusOK)
	wantStatus(t, "g1's recv", recvFrom(t, gc, "g1 recv"), http.StatusOK)
	// A second guest meets the host, whose claim survived.
	wantStatus(t, "g2", post(b.URL, signal.GuestPath, "6", guestReq(signal.NewPeerID())), http.StatusOK)
	wantStatus(t, "host gets g2", recvFrom(t, hc, "host"), http.StatusOK)
}

// TestRedisRestart: Redis dies and comes back empty. Meanwhile requests get
// 503 and /healthz says Redis is down; afterwards the log says what was lost,
// the waiting host has re-claimed its nameplate (a guest meets it), and the
// meeting in flight ends with "meeting expired".
func TestRedisRestart(t *testing.T) {
	rs := startRedis(t)
	var logs syncbuf.Buffer
	st := rs.store(t)
	st.log = slog.New(slog.NewTextHandler(&logs, nil))
	cfg := testConfig()
	cfg.Store, cfg.PollWait = st, 10*time.Second
	ts := startServer(t, cfg)

	host, guest := signal.NewPeerID(), signal.NewPeerID()
	m := meet(t, ts.URL, ts.URL, "3", host, guest)
	hc := asyncPost(ts.URL, signal.HostPath, "3", hostReq(host))
	rc := asyncPost(ts.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: guest})
	waitParked(t, ts.Server, 2)

	rs.kill()
	r := post(ts.URL, signal.GuestPath, "3", guestReq(signal.NewPeerID()))
	wantStatus(t, "guest while redis is down", r, http.StatusServiceUnavailable)
	require.NotEmpty(t, r.header.Get("Retry-After"), "503 without Retry-After")
	require.Equal(t, signal.MsgStoreUnavailable, r.errorMsg(t), "guest while redis is down")
	res, err := testClient.Get(ts.URL + "/healthz")
	require.NoError(t, err, "healthz while redis is down")
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "healthz while redis is down")
	res.Body.Close()

	rs.start()
	r = recvFrom(t, rc, "recv across the restart")
	wantStatus(t, "recv across the restart", r, http.StatusGone)
	require.Equal(t, signal.MsgMeetingExpired, r.errorMsg(t), "recv after the restart")
	// The parked host re-claimed its nameplate: a new guest meets it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := post(ts.URL, signal.GuestPath, "3", guestReq(signal.NewPeerID()))
		if g.status == http.StatusOK {
			break
		}
		require.False(t, time.Now().After(deadline), "guest after the restart: %d %s", g.status, g.body)
		time.Sleep(100 * time.Millisecond)
	}
	wantStatus(t, "host after the restart", recvFrom(t, hc, "host"), http.StatusOK)
	require.Contains(t, logs.String(), "redis restarted", "the log does not say Redis restarted")
}

// metric reads one sample from /metrics; it must be there.
func metric(t testing.TB, base, sample string) float64 {
	t.Helper()
	v, ok := scrapeMetric(t, base, sample)
	require.True(t, ok, "no %s in /metrics", sample)
	return v
}

// scrapeMetric reads one sample from /metrics, if it is there.
func scrapeMetric(t testing.TB, base, sample string) (float64, bool) {
	t.Helper()
	res, err := testClient.Get(base + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f, true
		}
	}
	return 0, false
}
