package signalserver

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startSTUN runs s.ServeSTUN on a loopback UDP socket of the given network.
func startSTUN(t *testing.T, s *Server, network, addr string) net.Addr {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeSTUN(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done, "ServeSTUN")
		pc.Close()
	})
	return pc.LocalAddr()
}

// TestSTUNPionClient: a real pion/stun client learns its own address.
func TestSTUNPionClient(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			srv := startSTUN(t, New(Config{}), tc.network, tc.addr)
			conn, err := net.DialUDP(tc.network, nil, srv.(*net.UDPAddr))
			require.NoError(t, err)
			c, err := stun.NewClient(conn)
			require.NoError(t, err)
			defer c.Close()
			var got stun.XORMappedAddress
			var evErr error
			req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
			err = c.Do(req, func(e stun.Event) {
				if evErr = e.Error; evErr != nil {
					return
				}
				// The client's reading goroutine calls this: assert, not require.
				assert.Equal(t, stun.BindingSuccess, e.Message.Type, "type")
				assert.NoError(t, stun.Fingerprint.Check(e.Message), "fingerprint")
				evErr = got.GetFrom(e.Message)
				assert.False(t, e.Message.Contains(stun.AttrSoftware), "answer with %v: want XOR-MAPPED-ADDRESS and FINGERPRINT only", e.Message.Attributes)
				if tc.network == "udp4" {
					assert.LessOrEqual(t, len(e.Message.Raw), 20+12+8, "answer with %v: want XOR-MAPPED-ADDRESS and FINGERPRINT only", e.Message.Attributes)
				}
			})
			require.NoError(t, err, "Do")
			require.NoError(t, evErr, "Do's event")
			local := conn.LocalAddr().(*net.UDPAddr)
			assert.True(t, got.IP.Equal(local.IP), "XOR-MAPPED-ADDRESS %v, want %v", got, local)
			assert.Equal(t, local.Port, got.Port, "XOR-MAPPED-ADDRESS port")
		})
	}
}

// TestSTUNIgnoresJunk: garbage and non-Binding messages get no answer and
// do not stop the responder; a valid request afterwards is answered.
func TestSTUNIgnoresJunk(t *testing.T) {
	ts := startServer(t, Config{STUNRatePerIP: -1})
	srv := startSTUN(t, ts.Server, "udp4", "127.0.0.1:0")
	conn, err := net.DialUDP("udp4", nil, srv.(*net.UDPAddr))
	require.NoError(t, err)
	defer conn.Close()

	badFP := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	badFP.Raw[len(badFP.Raw)-1] ^= 0xff
	truncated := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.NewSoftware("x"))
	junk := map[string][][]byte{
		"not_stun":  {[]byte("hello, world"), {}, make([]byte, 1400)},
		"malformed": {truncated.Raw[:len(truncated.Raw)-4]},
		"not_binding_request": {
			stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest)).Raw,
			stun.MustBuild(stun.TransactionID, stun.BindingSuccess).Raw,
			stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodBinding, stun.ClassIndication)).Raw,
		},
		"bad_fingerprint": {badFP.Raw},
	}
	for _, msgs := range junk {
		for _, m := range msgs {
			_, err := conn.Write(m)
			require.NoError(t, err)
		}
	}
	for reason, msgs := range junk {
		waitMetric(t, ts, `p2phttp_signal_stun_ignored_total{reason="`+reason+`"}`, float64(len(msgs)))
	}

	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	conn.Write(req.Raw)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	require.NoError(t, err)
	// Loopback keeps order: had any junk been answered, that answer would
	// have come first.
	res := &stun.Message{Raw: buf[:n]}
	require.NoError(t, res.Decode(), "answer")
	require.Equal(t, req.TransactionID, res.TransactionID, "answer's transaction")
	require.Equal(t, stun.BindingSuccess, res.Type, "answer's type")
	var got stun.XORMappedAddress
	assert.NoError(t, got.GetFrom(res), "XOR-MAPPED-ADDRESS")
	assert.Equal(t, conn.LocalAddr().String(), got.String(), "XOR-MAPPED-ADDRESS")
	waitMetric(t, ts, "p2phttp_signal_stun_requests_total", 1)
}

func TestSTUNRateLimit(t *testing.T) {
	ts := startServer(t, Config{STUNRatePerIP: 0.1, STUNBurst: 2})
	srv := startSTUN(t, ts.Server, "udp4", "127.0.0.1:0")
	conn, err := net.DialUDP("udp4", nil, srv.(*net.UDPAddr))
	require.NoError(t, err)
	defer conn.Close()
	for range 5 {
		conn.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw)
	}
	waitMetric(t, ts, `p2phttp_signal_stun_ignored_total{reason="rate_limited"}`, 3)
	waitMetric(t, ts, "p2phttp_signal_stun_requests_total", 2) // the burst
}

func TestListenAndServe(t *testing.T) {
	// Find free ports, then let ListenAndServe bind them.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	httpAddr := l.Addr().String()
	l.Close()
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	stunAddr := pc.LocalAddr().String()
	pc.Close()

	s := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, httpAddr, stunAddr) }()
	ts := &testServer{Server: s, Addr: httpAddr, URL: "http://" + httpAddr}
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", httpAddr)
		if err == nil {
			c.Close()
			break
		}
		require.LessOrEqual(t, i, 200, "the server never listened: %v", err)
		time.Sleep(10 * time.Millisecond)
	}
	res, err := testClient.Get(ts.URL + "/healthz")
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	res.Body.Close()
	conn, err := net.Dial("udp4", stunAddr)
	require.NoError(t, err)
	defer conn.Close()
	c, err := stun.NewClient(conn)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Do(stun.MustBuild(stun.TransactionID, stun.BindingRequest), func(e stun.Event) {
		assert.NoError(t, e.Error) // on the client's reading goroutine
	}))
	// The counter moves just after the answer is sent.
	waitMetric(t, ts, "p2phttp_signal_stun_requests_total", 1)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "ListenAndServe")
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not return")
	}
	// A taken port is an error, not a hang.
	l, _ = net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	assert.Error(t, New(Config{}).ListenAndServe(context.Background(), l.Addr().String(), "127.0.0.1:0"), "ListenAndServe on a taken port succeeded")
}

// waitMetric waits until a sample of /metrics reaches want.
func waitMetric(t testing.TB, ts *testServer, sample string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := scrapeMetric(t, ts.URL, sample) // a labelled sample appears when first counted
		if got == want {
			return
		}
		require.False(t, time.Now().After(deadline), "%s = %v, want %v", sample, got, want)
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSTUNPairChangeRequest: with two ports, every answer names the other in OTHER-ADDRESS, a CHANGE-REQUEST for
// another port is answered from it, and one for another IP address (or for another port on a one-port server)
// gets a 420 error naming CHANGE-REQUEST.
func TestSTUNPairChangeRequest(t *testing.T) {
	s := New(Config{})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	alt, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeSTUNPair(ctx, pc, alt) }()
	t.Cleanup(func() { cancel(); <-done; pc.Close(); alt.Close() })
	one := startSTUN(t, New(Config{}), "udp4", "127.0.0.1:0")

	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer conn.Close()
	ask := func(to net.Addr, change byte) (*stun.Message, net.Addr) {
		t.Helper()
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest,
			stun.RawAttribute{Type: stun.AttrChangeRequest, Value: []byte{0, 0, 0, change}}, stun.Fingerprint)
		_, err := conn.WriteTo(req.Raw, to)
		require.NoError(t, err)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1500)
		n, from, err := conn.ReadFrom(buf)
		require.NoError(t, err)
		m := &stun.Message{Raw: buf[:n]}
		require.NoError(t, m.Decode(), "answer")
		require.Equal(t, req.TransactionID, m.TransactionID, "answer's transaction")
		return m, from
	}
	for _, tc := range []struct {
		name     string
		to, from net.Addr
		change   byte
		other    net.Addr
	}{
		{"first port", pc.LocalAddr(), pc.LocalAddr(), 0, alt.LocalAddr()},
		{"second port", alt.LocalAddr(), alt.LocalAddr(), 0, pc.LocalAddr()},
		{"change port", pc.LocalAddr(), alt.LocalAddr(), changePort, alt.LocalAddr()},
		{"change port from the second", alt.LocalAddr(), pc.LocalAddr(), changePort, pc.LocalAddr()},
	} {
		m, from := ask(tc.to, tc.change)
		assert.Equal(t, stun.BindingSuccess, m.Type, tc.name)
		assert.Equal(t, tc.from.String(), from.String(), "%s: answered from", tc.name)
		var other stun.OtherAddress
		assert.NoError(t, other.GetFrom(m), "%s: OTHER-ADDRESS", tc.name)
		assert.Equal(t, tc.other.String(), other.String(), "%s: OTHER-ADDRESS", tc.name)
	}
	for _, tc := range []struct {
		name   string
		to     net.Addr
		change byte
	}{{"change IP", pc.LocalAddr(), changeIP}, {"change IP and port", pc.LocalAddr(), changeIP | changePort}, {"change port, one port", one, changePort}} {
		m, _ := ask(tc.to, tc.change)
		var code stun.ErrorCodeAttribute
		assert.Equal(t, stun.BindingError, m.Type, "%s: want a 420 error", tc.name)
		assert.NoError(t, code.GetFrom(m), "%s: want a 420 error", tc.name)
		assert.Equal(t, stun.CodeUnknownAttribute, code.Code, "%s: want a 420 error", tc.name)
	}
}
