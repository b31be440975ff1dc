package signalserver

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/signal/relay"
)

// startRelayFor runs a real relay on loopback UDP and TCP (one port) with secret, and returns its URLs.
func startRelayFor(t *testing.T, secret []byte) []string {
	t.Helper()
	pc, l, err := relay.Listen("127.0.0.1:0")
	require.NoError(t, err)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	rs, err := relay.New(relay.Config{Secret: secret, AllowPrivatePeers: true}, pc, l)
	require.NoError(t, err)
	t.Cleanup(func() { rs.Close() })
	hp := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String()
	return []string{"turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"}
}

// allocate makes a TURN allocation with r's credentials on the relay at addr over UDP, and relays one datagram
// through it to a plain UDP peer.
func allocate(t *testing.T, addr string, r *signal.RelayInfo) error {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: addr, STUNServerAddr: addr, Username: r.Username,
		Password: r.Password, Realm: relay.DefaultRealm, Conn: pc, RTO: 100 * time.Millisecond,
		LoggerFactory: discardPion{}})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Listen())
	relayed, err := c.Allocate()
	if err != nil {
		return err
	}
	defer relayed.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer peer.Close()
	// The permission for the peer is made by the first write.
	msg := []byte("sealed datagram")
	_, err = relayed.WriteTo(msg, peer.LocalAddr())
	require.NoError(t, err)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, _, err := peer.ReadFrom(buf)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(msg, buf[:n]))
	return nil
}

// relayAddr is the host:port of a turn: URL.
func relayAddr(url string) string {
	return strings.TrimPrefix(url[:strings.IndexByte(url, '?')], "turn:")
}

// Two signalling instances of one deployment share a secret: credentials a peer got from one allocate on the
// other's relay; a secret of another deployment does not verify.
func TestRelayCredentialsAcrossInstances(t *testing.T) {
	secret := []byte("one deployment's secret")
	urlsA, urlsB := startRelayFor(t, secret), startRelayFor(t, secret)
	cfgA, cfgB := testConfig(), testConfig()
	cfgA.RelayURLs, cfgA.RelaySecret = urlsA, secret
	cfgB.RelayURLs, cfgB.RelaySecret = urlsB, secret
	a, b := startServer(t, cfgA), startServer(t, cfgB)

	// A host's 202 carries credentials, fresh from each instance.
	hostRelay := func(ts *testServer) *signal.RelayInfo {
		host := signal.NewPeerID()
		r := post(ts.URL, signal.HostPath, "42", hostReq(host))
		wantStatus(t, "host poll", r, http.StatusAccepted)
		var w signal.WaitingResponse
		r.decode(t, &w)
		require.NotNil(t, w.Relay, "the host's 202 carries relay credentials")
		assert.NotContains(t, w.Relay.Username, host, "the peer ID, a bearer token, is not in the TURN username")
		return w.Relay
	}
	fromA, fromB := hostRelay(a), hostRelay(b)
	assert.Equal(t, urlsA, fromA.URLs)
	assert.Equal(t, urlsB, fromB.URLs)
	require.NoError(t, allocate(t, relayAddr(urlsB[0]), fromA), "A's credentials allocate on B's relay")
	require.NoError(t, allocate(t, relayAddr(urlsA[0]), fromB), "B's credentials allocate on A's relay")
	require.NoError(t, allocate(t, relayAddr(urlsA[0]), fromA))

	other := startRelayFor(t, []byte("another deployment"))
	assert.Error(t, allocate(t, relayAddr(other[0]), fromA), "credentials of another secret are refused")
}

// A guest's meeting answer carries credentials of its own, and a server without a relay hands out none.
func TestRelayCredentialsPerPeerAndOff(t *testing.T) {
	secret := []byte("s")
	cfg := testConfig()
	cfg.RelayURLs, cfg.RelaySecret = startRelayFor(t, secret), secret
	s := startServer(t, cfg)
	host, guest := signal.NewPeerID(), signal.NewPeerID()
	hostPoll := asyncPost(s.URL, signal.HostPath, "7", hostReq(host))
	waitParked(t, s.Server, 1)
	r := post(s.URL, signal.GuestPath, "7", guestReq(guest))
	wantStatus(t, "guest", r, http.StatusOK)
	var g signal.GuestResponse
	r.decode(t, &g)
	require.NotNil(t, g.Relay)
	hr := recvFrom(t, hostPoll, "host poll")
	wantStatus(t, "host", hr, http.StatusOK)
	var h signal.HostResponse
	hr.decode(t, &h)
	require.NotNil(t, h.Relay)
	assert.Equal(t, []string{g.Meeting}, h.Meetings)
	user := func(name string) string { return name[strings.IndexByte(name, ':')+1:] }
	assert.NotEqual(t, user(g.Relay.Username), user(h.Relay.Username), "each peer has a user of its own")
	require.NoError(t, allocate(t, relayAddr(cfg.RelayURLs[0]), g.Relay))

	// Health lists the relay, without credentials.
	res, err := http.Get(s.URL + signal.HealthzPath)
	require.NoError(t, err)
	var hl signal.HealthResponse
	require.NoError(t, jsonDecode(res, &hl))
	res.Body.Close()
	assert.Equal(t, cfg.RelayURLs, hl.Relay)

	off := startServer(t, testConfig())
	host, guest = signal.NewPeerID(), signal.NewPeerID()
	r = post(off.URL, signal.HostPath, "7", hostReq(host))
	wantStatus(t, "host poll without relay", r, http.StatusAccepted)
	assert.NotContains(t, string(r.body), "relay")
	hostPoll = asyncPost(off.URL, signal.HostPath, "7", hostReq(host))
	waitParked(t, off.Server, 1)
	r = post(off.URL, signal.GuestPath, "7", guestReq(guest))
	wantStatus(t, "guest without relay", r, http.StatusOK)
	assert.NotContains(t, string(r.body), "relay")
	hr = recvFrom(t, hostPoll, "host poll without relay")
	wantStatus(t, "host without relay", hr, http.StatusOK)
	assert.NotContains(t, string(hr.body), "relay")
}

// discardPion silences pion's logs in tests.
type discardPion struct{}

func (discardPion) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, io.Discard)
}
