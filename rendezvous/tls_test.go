package rendezvous_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

// A signalling server reached over https works like a plain one, long-polls included, and a client that does not
// trust its certificate is refused before it says anything.
func TestMeetThroughHTTPSSignalling(t *testing.T) {
	sig := signalserver.New(rendezvoustest.Unlimited())
	// httptest's server only for its certificate and client: the signalling server serves the TLS listener itself,
	// as `p2phttp signal` behind a TLS terminator or with its own certificate would.
	cert := httptest.NewUnstartedServer(http.NotFoundHandler())
	cert.StartTLS()
	defer cert.Close()
	tlsCfg := cert.TLS.Clone()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- sig.Serve(ctx, tls.NewListener(ln, tlsCfg)) }()
	stun, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer stun.Close()
	go sig.ServeSTUN(ctx, stun)

	cfg := rendezvous.Config{
		SignalURL:  "https://" + ln.Addr().String(),
		STUNAddr:   stun.LocalAddr().String(),
		LocalAddr:  "127.0.0.1:0",
		HTTPClient: cert.Client(), // trusts the test certificate
	}
	host, hs, gs, err := rendezvoustest.Pair(ctx, cfg, cfg)
	require.NoError(t, err)
	defer host.Close()
	defer gs.Close()
	body := bytes.Repeat([]byte{0x5A}, 50_000)
	got := roundTrip(t, gs.Stream(), hs.Stream(), "host", "/over-tls", body)
	assert.Equal(t, fmt.Sprintf("host served POST /over-tls with 50000 bytes: %x", body), got)
	assert.Equal(t, hs.Report().Verifier, gs.Report().Verifier)

	// Without the certificate in its roots, a guest fails on the handshake: no code, no nameplate leaves it.
	untrusting := cfg
	untrusting.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	untrusting.Code = host.Code()
	_, err = rendezvous.Meet(ctx, untrusting)
	require.Error(t, err)
	assert.ErrorContains(t, err, "certificate")

	cancel()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the signalling server did not stop")
	}
}
