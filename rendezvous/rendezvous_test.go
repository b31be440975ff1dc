package rendezvous_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v2"
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
	srv, err := rendezvoustest.NewServer(rendezvoustest.Unlimited())
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

func TestHostAndGuestOnLoopback(t *testing.T) {
	srv := newServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, a, b, err := rendezvoustest.Pair(ctx, srv.Config(""), srv.Config(""))
	require.NoError(t, err)
	defer host.Close()
	defer b.Close()

	// Stream 1, opened by the guest: B writes first and is the client; A (the host) reads first and is the server.
	body := bytes.Repeat([]byte{0xA5}, 100_000)
	got := roundTrip(t, b.Stream(), a.Stream(), "A", "/one", body)
	assert.Equal(t, fmt.Sprintf("A served POST /one with 100000 bytes: %x", body), got)

	// Stream 2, opened by the host: now A writes first and is the client.
	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() { c, err := b.AcceptStream(ctx); acc <- accepted{c, err} }()
	sa, err := a.OpenStream(ctx)
	require.NoError(t, err)
	rb := <-acc
	require.NoError(t, rb.err)
	got = roundTrip(t, sa, rb.c, "B", "/two", []byte("from A"))
	assert.Equal(t, fmt.Sprintf("B served POST /two with 6 bytes: %x", "from A"), got)

	// The reports agree with each other and with the sockets.
	repA, repB := a.Report(), b.Report()
	assert.Equal(t, rendezvous.RoleHost, repA.Role)
	assert.Equal(t, rendezvous.RoleGuest, repB.Role)
	assert.False(t, repA.Dialer)
	assert.True(t, repB.Dialer, "the guest dials")
	assert.Equal(t, repB.LocalAddr, repA.RemoteAddr)
	assert.Equal(t, repA.LocalAddr, repB.RemoteAddr)
	assert.Equal(t, repA.Meeting, repB.Meeting)
	assert.Len(t, repA.Meeting, signal.MeetingIDLen)
	code, err := signal.ParseCode(host.Code())
	require.NoError(t, err)
	assert.Equal(t, code.Nameplate, repA.Nameplate)
	assert.Equal(t, code.Nameplate, repB.Nameplate)
	assert.Equal(t, repA.Verifier, repB.Verifier, "both sides show the same verifier")
	assert.Regexp(t, `^[a-z]+-[a-z]+-[a-z]+-[a-z]+$`, repA.Verifier)
	assert.Equal(t, host.Report().LocalAddr, repA.LocalAddr, "the host's sessions share its socket")
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
		for _, d := range []time.Duration{r.Signal, r.Punch, r.Stream} {
			assert.Positive(t, d)
		}
		assert.GreaterOrEqual(t, r.Total, r.Gather+r.Signal+r.Punch+r.Stream)
	}
	assert.Positive(t, repB.Gather)
	assert.Equal(t, repB.Candidates, repA.PeerCandidates)
	assert.Equal(t, repA.Candidates, repB.PeerCandidates)

	// When the guest closes, the host's session learns the path ended, and the host goes on.
	require.NoError(t, b.Close())
	assert.NoError(t, b.Close(), "Close is idempotent")
	select {
	case <-a.Done():
		assert.ErrorIs(t, a.Err(), utp.ErrPathClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("the host did not notice that the guest closed the session")
	}
	cfg := srv.Config(host.Code())
	c, err := rendezvous.Meet(ctx, cfg)
	require.NoError(t, err, "the host meets the next guest")
	c.Close()
}

// One host, many guests at once: each gets its own meeting, keys and path on the host's one socket, and its own
// bytes back, while the host keeps accepting.
func TestManyGuests(t *testing.T) {
	const guests = 20
	srv := newServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	host, err := rendezvous.NewHost(ctx, srv.Config(""))
	require.NoError(t, err)
	defer host.Close()

	// The host serves each guest as it comes, one goroutine each.
	hostSide := make(chan rendezvous.Report, guests)
	go func() {
		for {
			s, err := host.Accept(ctx)
			if err != nil {
				return
			}
			hostSide <- s.Report()
			go func() {
				defer s.Close()
				symhttp.Serve(symsock.New(s.Stream()), echoHandler("host"))
			}()
		}
	}()

	type result struct {
		rep  rendezvous.Report
		body string
		want string
		err  error
	}
	results := make(chan result, guests)
	for i := range guests {
		go func() {
			s, err := rendezvous.Meet(ctx, srv.Config(host.Code()))
			if err != nil {
				results <- result{err: err}
				return
			}
			defer s.Close()
			body := bytes.Repeat([]byte{byte(i)}, 10_000+i)
			client := &http.Client{Transport: symhttp.NewRoundTripper(symsock.New(s.Stream()))}
			resp, err := client.Post(fmt.Sprintf("http://peer/guest/%d", i), "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				results <- result{err: err}
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{rep: s.Report(), body: string(got), err: err,
				want: fmt.Sprintf("host served POST /guest/%d with %d bytes: %x", i, len(body), body)}
		}()
	}
	guestReports := map[string]rendezvous.Report{}
	for range guests {
		r := <-results
		require.NoError(t, r.err)
		require.Equal(t, r.want, r.body, "byte-exact")
		guestReports[r.rep.Meeting] = r.rep
	}
	assert.Len(t, guestReports, guests, "every guest had a meeting of its own")
	verifiers := map[string]bool{}
	for range guests {
		h := <-hostSide
		g, ok := guestReports[h.Meeting]
		require.True(t, ok, "the host met a guest that is not one of ours")
		assert.Equal(t, g.Verifier, h.Verifier)
		assert.Equal(t, g.LocalAddr, h.RemoteAddr, "each guest has its own path")
		assert.Equal(t, host.Report().LocalAddr, h.LocalAddr, "on the host's one socket")
		verifiers[h.Verifier] = true
	}
	assert.Greater(t, len(verifiers), guests-3, "verifiers differ between meetings")
}

// Guests never meet each other: two guests of a code without a host both wait for the host.
func TestGuestsNeverMeetGuests(t *testing.T) {
	srv := newServer(t)
	cfg := srv.Config(signal.NewCode())
	cfg.PeerTimeout = time.Second
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			s, err := rendezvous.Meet(context.Background(), cfg)
			if s != nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 2 {
		err := <-errs
		assert.ErrorIs(t, err, rendezvous.ErrPeerNeverCame)
	}
}

// A host that closed is gone at once: a guest that comes later is not put in a meeting with it, and the nameplate
// is free for the next host at once.
func TestHostLeftIsNoticedAtOnce(t *testing.T) {
	srv := newServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := rendezvous.NewHost(ctx, srv.Config(""))
	require.NoError(t, err)
	code := first.Code()
	// Make sure the host holds the nameplate before it leaves: one guest meets it.
	s, err := rendezvous.Meet(ctx, srv.Config(code))
	require.NoError(t, err)
	s.Close()
	require.NoError(t, first.Close())
	_, err = first.Accept(ctx)
	assert.ErrorIs(t, err, rendezvous.ErrHostClosed)

	cfg := srv.Config(code)
	cfg.PeerTimeout = time.Second
	_, err = rendezvous.Meet(ctx, cfg)
	assert.ErrorIs(t, err, rendezvous.ErrPeerNeverCame, "no meeting with a ghost")

	hcfg := srv.Config(code)
	second, err := rendezvous.NewHost(ctx, hcfg)
	require.NoError(t, err)
	defer second.Close()
	assert.Equal(t, code, second.Code())
	s, err = rendezvous.Meet(ctx, srv.Config(code))
	require.NoError(t, err, "the nameplate was free for the next host")
	s.Close()
}

// fakeSTUN answers Binding requests with whatever address mapped returns, standing for a NAT whose mapping changes.
func fakeSTUN(t *testing.T, mapped func(from netip.AddrPort) netip.AddrPort) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), b[:n]...)}
			if req.Decode() != nil || req.Type != stun.BindingRequest {
				continue
			}
			a := mapped(from.(*net.UDPAddr).AddrPort())
			res, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: a.Addr().AsSlice(), Port: int(a.Port())}, stun.Fingerprint)
			if err == nil {
				pc.WriteTo(res.Raw, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// A host keeps asking STUN while it waits; when its public address changes, the guests that come later get the new
// one.
func TestHostRefreshesItsPublicAddress(t *testing.T) {
	srv := newServer(t)
	moved := netip.MustParseAddrPort("127.0.0.1:9") // nobody listens there; the host candidate still works
	var asked atomic.Int32
	stunAddr := fakeSTUN(t, func(from netip.AddrPort) netip.AddrPort {
		if asked.Add(1) > 1 {
			return moved
		}
		return from
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := srv.Config("")
	cfg.STUNAddr = stunAddr
	cfg.RefreshInterval = 20 * time.Millisecond
	host, err := rendezvous.NewHost(ctx, cfg)
	require.NoError(t, err)
	defer host.Close()
	assert.Equal(t, host.Report().LocalAddr, host.Report().Reflexive)
	require.Eventually(t, func() bool { return host.Report().Reflexive == moved }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, utp.Candidate{Kind: utp.CandidateSrflx, Addr: moved}, host.Report().Candidates[0])

	go func() {
		if s, err := host.Accept(ctx); err == nil {
			s.Close()
		}
	}()
	s, err := rendezvous.Meet(ctx, srv.Config(host.Code()))
	require.NoError(t, err)
	defer s.Close()
	assert.Contains(t, s.Report().PeerCandidates, utp.Candidate{Kind: utp.CandidateSrflx, Addr: moved})
}

// A code's nameplate belongs to one host: a second host with the same code is refused and says why.
func TestNameplateInUse(t *testing.T) {
	srv := newServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := rendezvous.NewHost(ctx, srv.Config(""))
	require.NoError(t, err)
	defer first.Close()
	s, err := rendezvous.Meet(ctx, srv.Config(first.Code())) // the first host surely holds it now
	require.NoError(t, err)
	s.Close()

	second, err := rendezvous.NewHost(ctx, srv.Config(first.Code()))
	require.NoError(t, err)
	defer second.Close()
	_, err = second.Accept(ctx)
	assert.ErrorIs(t, err, signal.ErrNameplateInUse)
	assert.ErrorIs(t, err, rendezvous.ErrSignalRefused)

	// A host that picks its code just picks another nameplate.
	third, err := rendezvous.NewHost(ctx, srv.Config(""))
	require.NoError(t, err)
	defer third.Close()
	s, err = rendezvous.Meet(ctx, srv.Config(third.Code()))
	require.NoError(t, err)
	s.Close()
}

// A guest with the wrong words fails cleanly on both sides; after MaxFailures such guests the host retires the code
// and says so, the old code no longer reaches it and the new one does.
func TestWrongCodeRetiresCode(t *testing.T) {
	srv := newServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hcfg := srv.Config("")
	hcfg.MaxFailures = 2
	newCodes := make(chan string, 4)
	hcfg.OnNewCode = func(code string, reason error) {
		if errors.Is(reason, signal.ErrCodeRetired) {
			newCodes <- code
		}
	}
	host, err := rendezvous.NewHost(ctx, hcfg)
	require.NoError(t, err)
	defer host.Close()
	old, err := signal.ParseCode(host.Code())
	require.NoError(t, err)
	wrong := signal.Code{Nameplate: old.Nameplate, Secret: old.Secret + "-x"}

	for i := range 2 {
		_, err := rendezvous.Meet(ctx, srv.Config(wrong.String()))
		var re *rendezvous.Error
		require.ErrorAs(t, err, &re, "guess %d", i)
		assert.Equal(t, rendezvous.StepSignal, re.Step)
		assert.ErrorIs(t, err, rendezvous.ErrWrongCode)
		assert.ErrorIs(t, err, signal.ErrConfirmFailed)
	}
	var fresh string
	select {
	case fresh = <-newCodes:
	case <-ctx.Done():
		t.Fatal("the code was not retired after 2 failed confirmations")
	}
	assert.Equal(t, fresh, host.Code())
	assert.NotEqual(t, old.String(), fresh)

	cfg := srv.Config(old.String())
	cfg.PeerTimeout = time.Second
	_, err = rendezvous.Meet(ctx, cfg)
	assert.ErrorIs(t, err, rendezvous.ErrPeerNeverCame, "the retired code reaches nobody")

	done := make(chan error, 1)
	go func() {
		s, err := host.Accept(ctx)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	s, err := rendezvous.Meet(ctx, srv.Config(fresh))
	require.NoError(t, err, "the new code works")
	s.Close()
	require.NoError(t, <-done)
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
		cfg := srv.Config("5-some-code")
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
		cfg := srv.Config("5-some-code")
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
		// The host is a bare signalling client whose candidate answers nothing.
		silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer silent.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		h, err := signal.NewClient(srv.URL).Host(ctx, signal.HostConfig{
			Candidates: []signal.Candidate{{Kind: "host", Addr: silent.LocalAddr().(*net.UDPAddr).AddrPort()}}})
		require.NoError(t, err)
		defer h.Close()
		cfg := srv.Config(h.Code().String())
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
		_, err = rendezvous.Meet(context.Background(), rendezvous.Config{SignalURL: "127.0.0.1:8080", Code: "5-x"})
		assert.EqualError(t, err, `rendezvous: signalling URL "127.0.0.1:8080" is not an http:// or https:// URL`)
		_, err = rendezvous.Meet(context.Background(), rendezvous.Config{SignalURL: srv.URL, Code: "amber-otter"})
		assert.ErrorIs(t, err, signal.ErrInvalidCode)
		assert.ErrorContains(t, err, "does not start with a nameplate")
		_, err = rendezvous.NewHost(context.Background(), rendezvous.Config{SignalURL: srv.URL, Code: "07-amber"})
		assert.ErrorIs(t, err, signal.ErrInvalidCode)
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

// With a relay beside the signalling server, both peers offer a relay candidate, and peers that reach each other
// directly still use the direct (host) pair.
func TestRelayCandidateOfferedDirectPreferred(t *testing.T) {
	srv, err := rendezvoustest.NewServerWithRelay(rendezvoustest.Unlimited())
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, a, b, err := rendezvoustest.Pair(ctx, srv.Config(""), srv.Config(""))
	require.NoError(t, err)
	defer host.Close()
	defer b.Close()
	hasRelay := func(cands []utp.Candidate) bool {
		for _, c := range cands {
			if c.Kind == utp.CandidateRelay {
				return true
			}
		}
		return false
	}
	for _, s := range []*rendezvous.Session{a, b} {
		rep := s.Report()
		assert.True(t, hasRelay(rep.Candidates), "%s offered %v", rep.Role, rep.Candidates)
		assert.True(t, hasRelay(rep.PeerCandidates), "%s got %v", rep.Role, rep.PeerCandidates)
		assert.True(t, rep.Relay.IsValid(), "%s has no relayed address", rep.Role)
	}
	// The first route may be the relay if it answered first; the host pair takes over.
	for _, s := range []*rendezvous.Session{a, b} {
		deadline := time.After(10 * time.Second)
		for {
			changed := s.RouteChanged()
			if r := s.Route(); r.Host {
				break
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("%s: route %+v, want a host pair", s.Report().Role, s.Route())
			}
		}
	}
	got := roundTrip(t, b.Stream(), a.Stream(), "host", "/relay", []byte("over the best route"))
	assert.Contains(t, got, "host served POST /relay")
}

// A relay the peers cannot reach costs a guest at most RelayTimeout: the meeting goes on without it.
func TestUnreachableRelayIsSkipped(t *testing.T) {
	dead, err := net.ListenPacket("udp4", "127.0.0.1:0") // answers nothing
	require.NoError(t, err)
	defer dead.Close()
	cfg := rendezvoustest.Unlimited()
	cfg.RelaySecret = []byte("secret")
	cfg.RelayURLs = []string{"turn:" + dead.LocalAddr().String() + "?transport=udp", "turn:127.0.0.1:1?transport=tcp"}
	srv, err := rendezvoustest.NewServer(cfg)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	guestCfg := srv.Config("")
	guestCfg.RelayTimeout = 500 * time.Millisecond
	host, a, b, err := rendezvoustest.Pair(ctx, srv.Config(""), guestCfg)
	require.NoError(t, err)
	defer host.Close()
	defer b.Close()
	assert.False(t, b.Report().Relay.IsValid(), "the guest got a relay from nowhere")
	assert.False(t, b.Route().Relayed)
	got := roundTrip(t, b.Stream(), a.Stream(), "host", "/norelay", []byte("x"))
	assert.Contains(t, got, "host served POST /norelay")
}

// The peers seal their path with the host's best cipher that the guest offered too: AES-256-GCM only when both
// offer it, ChaCha20-Poly1305 when either has only that. Both reports name it, and the path carries HTTP with it.
func TestCipherNegotiatedInTheMeeting(t *testing.T) {
	aesFirst := []utp.Cipher{utp.AES256GCM, utp.ChaCha20Poly1305}
	chachaOnly := []utp.Cipher{utp.ChaCha20Poly1305}
	for _, tc := range []struct {
		name        string
		host, guest []utp.Cipher
		want        utp.Cipher
	}{
		{"both AES", aesFirst, aesFirst, utp.AES256GCM},
		{"guest ChaCha only", aesFirst, chachaOnly, utp.ChaCha20Poly1305},
		{"host ChaCha only", chachaOnly, aesFirst, utp.ChaCha20Poly1305},
		{"defaults", nil, nil, utp.Ciphers()[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			hc, gc := srv.Config(""), srv.Config("")
			hc.Ciphers, gc.Ciphers = tc.host, tc.guest
			host, a, b, err := rendezvoustest.Pair(ctx, hc, gc)
			require.NoError(t, err)
			defer host.Close()
			defer b.Close()
			assert.Equal(t, tc.want, a.Report().Cipher, "host's report")
			assert.Equal(t, tc.want, b.Report().Cipher, "guest's report")
			body := bytes.Repeat([]byte{0x3c}, 50_000)
			got := roundTrip(t, b.Stream(), a.Stream(), "A", "/sealed", body)
			assert.Equal(t, fmt.Sprintf("A served POST /sealed with 50000 bytes: %x", body), got)
		})
	}
}

// A cipher this build does not implement is refused before anything is sent.
func TestUnknownCipherRefused(t *testing.T) {
	srv := newServer(t)
	cfg := srv.Config("7-amber-otter")
	cfg.Ciphers = []utp.Cipher{"rot13"}
	_, err := rendezvous.Meet(context.Background(), cfg)
	require.ErrorIs(t, err, utp.ErrUnknownCipher)
	cfg.Code = ""
	_, err = rendezvous.NewHost(context.Background(), cfg)
	require.ErrorIs(t, err, utp.ErrUnknownCipher)
}
