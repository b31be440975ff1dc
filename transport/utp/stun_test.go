package utp

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v2"
	"github.com/stretchr/testify/require"
)

// stunResponder answers binding requests on loopback with pion/stun messages. It ignores the first `drop`
// requests; with errCode set it answers with that error instead.
func stunResponder(t *testing.T, drop int32, errCode stun.ErrorCode) (addr string, requests *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	requests = new(atomic.Int32)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil || req.Type != stun.BindingRequest {
				continue
			}
			if requests.Add(1) <= drop {
				continue
			}
			ua := from.(*net.UDPAddr)
			setters := []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID)}
			if errCode != 0 {
				setters = append(setters, stun.BindingError, errCode)
			} else {
				setters = append(setters, stun.BindingSuccess, &stun.XORMappedAddress{IP: ua.IP, Port: ua.Port})
			}
			setters = append(setters, stun.NewSoftware("p2phttp test"), stun.Fingerprint)
			resp, err := stun.Build(setters...)
			if err != nil {
				panic(err)
			}
			pc.WriteTo(resp.Raw, from)
		}
	}()
	return pc.LocalAddr().String(), requests
}

func TestDiscoverSTUN(t *testing.T) {
	cfg := fastConfig()
	cfg.STUNRetransmit = 20 * time.Millisecond
	tr := listen(t, cfg)
	ctx := context.Background()

	t.Run("answer", func(t *testing.T) {
		server, reqs := stunResponder(t, 0, 0)
		got, err := tr.DiscoverSTUN(ctx, server)
		require.NoError(t, err)
		require.Equal(t, tr.LocalAddr().AddrPort(), got)
		require.Equal(t, int32(1), reqs.Load())
	})
	t.Run("retransmits", func(t *testing.T) {
		server, reqs := stunResponder(t, 3, 0)
		got, err := tr.DiscoverSTUN(ctx, server)
		require.NoError(t, err)
		require.Equal(t, tr.LocalAddr().AddrPort(), got)
		require.Equal(t, int32(4), reqs.Load())
	})
	t.Run("error response", func(t *testing.T) {
		server, _ := stunResponder(t, 0, stun.CodeServerError)
		_, err := tr.DiscoverSTUN(ctx, server)
		require.ErrorIs(t, err, ErrSTUN)
		require.True(t, strings.Contains(err.Error(), "500"), "error %q does not name the code", err)
	})
	t.Run("no answer", func(t *testing.T) {
		server, reqs := stunResponder(t, 1<<30, 0)
		ctx, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := tr.DiscoverSTUN(ctx, server)
		require.ErrorIs(t, err, ErrSTUN)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, time.Since(start) < 2*time.Second, "took %v", time.Since(start))
		require.True(t, reqs.Load() >= 3, "only %d requests in 400 ms with a 20 ms RTO", reqs.Load())
	})
	t.Run("bad server", func(t *testing.T) {
		_, err := tr.DiscoverSTUN(ctx, "no-such-host.invalid:3478")
		require.ErrorIs(t, err, ErrSTUN)
	})
}

// STUN, control packets and uTP share the socket: discovery works in the middle of a transfer.
func TestSTUNDuringTransfer(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	c1, c2 := openPair(t, pa, pb)
	server, _ := stunResponder(t, 0, 0)
	// The discoveries run beside the transfer and send their results back: the assertions stay on the test goroutine.
	type discovery struct {
		got netip.AddrPort
		err error
	}
	found := make(chan discovery, 5)
	go func() {
		defer close(found)
		for range 5 {
			got, err := a.DiscoverSTUN(context.Background(), server)
			found <- discovery{got, err}
			if err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	exchange(t, c1, c2, 4<<20)
	for d := range found {
		require.NoError(t, d.err)
		require.Equal(t, a.LocalAddr().AddrPort(), d.got)
	}
}
