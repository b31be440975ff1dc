package rendezvous_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
	"github.com/p2phttp/p2phttp/transport/utp"
)

func newServer(t *testing.T) *rendezvoustest.Server {
	t.Helper()
	srv, err := rendezvoustest.NewServer(signal.ServerConfig{RatePerIP: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

// echoHandler answers with who served and what it got, so each side can check the other's bytes.
func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s served %s %s with %d bytes: %x", name, r.Method, r.URL.Path, len(body), body)
	})
}

// roundTrip sends one POST from client to server over conns (client writes first, so it becomes the client) and
// returns the response body.
func roundTrip(t *testing.T, clientConn, serverConn net.Conn, serverName, path string, body []byte) string {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- symhttp.Serve(symsock.New(serverConn), echoHandler(serverName)) }()
	client := &http.Client{Transport: symhttp.NewRoundTripper(symsock.New(clientConn))}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://peer"+path, bytes.NewReader(body))
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	clientConn.Close() // ends Serve cleanly between requests
	select {
	case err := <-served:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the client closed")
	}
	return string(got)
}

func TestMeetOnLoopback(t *testing.T) {
	srv := newServer(t)
	code := signal.NewCode()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, err := rendezvoustest.Pair(ctx, srv.Config(code), srv.Config(code))
	require.NoError(t, err)
	defer a.Close()
	defer b.Close()

	// Stream 1: A writes first and is the client; B reads first and is the server.
	body := bytes.Repeat([]byte{0xA5}, 100_000)
	got := roundTrip(t, a.Stream(), b.Stream(), "B", "/one", body)
	assert.Equal(t, fmt.Sprintf("B served POST /one with 100000 bytes: %x", body), got)

	// Stream 2, opened by B: now B writes first and is the client.
	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() { c, err := a.AcceptStream(ctx); acc <- accepted{c, err} }()
	sb, err := b.OpenStream(ctx)
	require.NoError(t, err)
	ra := <-acc
	require.NoError(t, ra.err)
	got = roundTrip(t, sb, ra.c, "A", "/two", []byte("from B"))
	assert.Equal(t, fmt.Sprintf("A served POST /two with 6 bytes: %x", "from B"), got)

	// The reports agree with each other and with the sockets.
	repA, repB := a.Report(), b.Report()
	assert.Equal(t, repB.LocalAddr, repA.RemoteAddr)
	assert.Equal(t, repA.LocalAddr, repB.RemoteAddr)
	assert.Equal(t, repA.RoomID, repB.RoomID)
	assert.Len(t, repA.RoomID, 64)
	assert.NotEqual(t, repA.Dialer, repB.Dialer, "exactly one side dials")
	for _, r := range []rendezvous.Report{repA, repB} {
		assert.Equal(t, "127.0.0.1", r.LocalAddr.Addr().String())
		assert.Equal(t, r.LocalAddr, r.Reflexive, "on loopback STUN sees the bound address")
		assert.Empty(t, r.STUNError)
		assert.Equal(t, []utp.Candidate{{Kind: utp.CandidateHost, Addr: r.LocalAddr}}, r.Candidates,
			"bound to 127.0.0.1, and STUN saw the same address")
		assert.Equal(t, r.RemoteAddr, r.PeerCandidate.Addr)
		assert.Equal(t, utp.CandidateHost, r.PeerCandidate.Kind)
		assert.Equal(t, utp.Candidate{Kind: utp.CandidateHost, Addr: r.LocalAddr}, r.LocalCandidate)
		assert.True(t, r.Direct)
		assert.Positive(t, r.RTT)
		assert.Less(t, r.RTT, time.Second)
		for _, d := range []time.Duration{r.Gather, r.Signal, r.Punch, r.Stream} {
			assert.Positive(t, d)
		}
		assert.GreaterOrEqual(t, r.Total, r.Gather+r.Signal+r.Punch+r.Stream)
	}
	assert.Equal(t, repB.Candidates, repA.PeerCandidates)
	assert.Equal(t, repA.Candidates, repB.PeerCandidates)

	// When one side closes, the other learns the path ended.
	require.NoError(t, a.Close())
	assert.NoError(t, a.Close(), "Close is idempotent")
	select {
	case <-b.Done():
		assert.ErrorIs(t, b.Err(), utp.ErrPathClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("B did not notice that A closed the session")
	}
}

func TestMeetFailures(t *testing.T) {
	srv := newServer(t)
	deadURL := func() string {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return "http://" + ln.Addr().String()
	}()

	t.Run("signalling server unreachable", func(t *testing.T) {
		cfg := srv.Config("some-code")
		cfg.SignalURL = deadURL
		start := time.Now()
		_, err := rendezvous.Meet(context.Background(), cfg)
		var re *rendezvous.Error
		require.ErrorAs(t, err, &re)
		assert.Equal(t, rendezvous.StepSignal, re.Step)
		assert.ErrorIs(t, err, rendezvous.ErrSignalUnreachable)
		assert.Contains(t, err.Error(), "rendezvous: signal: cannot reach signalling server: ")
		assert.Contains(t, err.Error(), "connection refused")
		assert.Less(t, time.Since(start), 3*time.Second, "fails fast, without waiting for STUN")
	})

	t.Run("not a signalling server", func(t *testing.T) {
		other := http.Server{Handler: http.NotFoundHandler()}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		go other.Serve(ln)
		defer other.Close()
		cfg := srv.Config("some-code")
		cfg.SignalURL = "http://" + ln.Addr().String()
		_, err = rendezvous.Meet(context.Background(), cfg)
		assert.ErrorIs(t, err, rendezvous.ErrSignalUnreachable)
		assert.Contains(t, err.Error(), "404 Not Found")
	})

	t.Run("peer never came", func(t *testing.T) {
		cfg := srv.Config(signal.NewCode())
		cfg.PeerTimeout = 300 * time.Millisecond
		_, err := rendezvous.Meet(context.Background(), cfg)
		assert.ErrorIs(t, err, rendezvous.ErrPeerNeverCame)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		_, err := rendezvous.Meet(ctx, srv.Config(signal.NewCode()))
		assert.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, rendezvous.ErrPeerNeverCame)
	})

	t.Run("punching fails on every pair", func(t *testing.T) {
		// The "peer" is a bare signalling client whose candidate answers nothing.
		code := signal.NewCode()
		silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer silent.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		go signal.NewClient(srv.URL).Join(ctx, code, []signal.Candidate{{Kind: "host", Addr: silent.LocalAddr().(*net.UDPAddr).AddrPort()}})
		cfg := srv.Config(code)
		cfg.PunchTimeout = time.Second
		_, err = rendezvous.Meet(ctx, cfg)
		var re *rendezvous.Error
		require.ErrorAs(t, err, &re)
		assert.Equal(t, rendezvous.StepPunch, re.Step)
		assert.ErrorIs(t, err, rendezvous.ErrPunchFailed)
		assert.ErrorIs(t, err, utp.ErrPunchFailed)
	})

	t.Run("bad config", func(t *testing.T) {
		_, err := rendezvous.Meet(context.Background(), rendezvous.Config{SignalURL: srv.URL})
		assert.EqualError(t, err, "rendezvous: Config.Code is empty")
		_, err = rendezvous.Meet(context.Background(), rendezvous.Config{SignalURL: "127.0.0.1:8080", Code: "x"})
		assert.EqualError(t, err, `rendezvous: signalling URL "127.0.0.1:8080" is not an http:// or https:// URL`)
	})
}

func TestErrorMatchesReasonAndCause(t *testing.T) {
	cause := errors.New("boom")
	err := error(&rendezvous.Error{Step: rendezvous.StepPunch, Reason: rendezvous.ErrPunchFailed, Err: cause})
	assert.ErrorIs(t, err, rendezvous.ErrPunchFailed)
	assert.ErrorIs(t, err, cause)
	assert.NotErrorIs(t, err, rendezvous.ErrStreamFailed)
	assert.EqualError(t, err, "rendezvous: punch: punching failed on every candidate pair: boom")
	assert.EqualError(t, &rendezvous.Error{Step: rendezvous.StepSignal, Err: context.Canceled}, "rendezvous: signal: context canceled")
}
