package utp

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v2"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal/signalserver"
)

// natResponder answers binding requests on loopback with the mapped address shifted by shift ports (a NAT that
// maps this destination elsewhere) and, when other is valid, OTHER-ADDRESS other. A silent responder reads and
// never answers.
func natResponder(t *testing.T, pc net.PacketConn, shift int, other netip.AddrPort, silent bool) {
	t.Helper()
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if silent || req.Decode() != nil || req.Type != stun.BindingRequest {
				continue
			}
			ua := from.(*net.UDPAddr)
			setters := []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port + shift}}
			if other.IsValid() {
				setters = append(setters, &stun.OtherAddress{IP: other.Addr().AsSlice(), Port: int(other.Port())})
			}
			resp, err := stun.Build(append(setters, stun.Fingerprint)...)
			if err != nil {
				panic(err)
			}
			pc.WriteTo(resp.Raw, from)
		}
	}()
}

func loopbackPC(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	return pc
}

func pcAddr(pc net.PacketConn) netip.AddrPort { return pc.LocalAddr().(*net.UDPAddr).AddrPort() }

func TestDiscoverNAT(t *testing.T) {
	cfg := fastConfig()
	cfg.STUNRetransmit = 20 * time.Millisecond
	ctx := context.Background()

	t.Run("the signalling server's two ports: no NAT on loopback, endpoint-independent", func(t *testing.T) {
		srv := signalserver.New(signalserver.Config{STUNRatePerIP: -1})
		pc, alt := loopbackPC(t), loopbackPC(t)
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.ServeSTUNPair(sctx, pc, alt) }()
		t.Cleanup(func() { cancel(); <-done; pc.Close(); alt.Close(); srv.Close() })
		tr := listen(t, cfg)
		rep, err := tr.DiscoverNAT(ctx, pcAddr(pc).String())
		require.NoError(t, err)
		self := tr.LocalAddr().AddrPort()
		require.Equal(t, NATReport{Reflexive: self, Observed: []netip.AddrPort{self, self}, Mapping: MappingEndpointIndependent}, rep)
		require.Equal(t, rep, tr.NAT(), "the Transport keeps the report")
	})
	t.Run("a new port towards the second address: per-destination", func(t *testing.T) {
		pc, alt := loopbackPC(t), loopbackPC(t)
		natResponder(t, pc, 0, netip.AddrPortFrom(netip.IPv4Unspecified(), pcAddr(alt).Port()), false)
		natResponder(t, alt, 3, netip.AddrPort{}, false)
		tr := listen(t, cfg)
		rep, err := tr.DiscoverNAT(ctx, pcAddr(pc).String())
		require.NoError(t, err)
		self := tr.LocalAddr().AddrPort()
		shifted := netip.AddrPortFrom(self.Addr(), self.Port()+3)
		require.Equal(t, NATReport{Reflexive: self, Observed: []netip.AddrPort{self, shifted}, Mapping: MappingPerDestination}, rep)
	})
	t.Run("no OTHER-ADDRESS: mapping unknown", func(t *testing.T) {
		pc := loopbackPC(t)
		natResponder(t, pc, 0, netip.AddrPort{}, false)
		tr := listen(t, cfg)
		rep, err := tr.DiscoverNAT(ctx, pcAddr(pc).String())
		require.NoError(t, err)
		self := tr.LocalAddr().AddrPort()
		require.Equal(t, NATReport{Reflexive: self, Observed: []netip.AddrPort{self}}, rep)
	})
	t.Run("the second address is silent: mapping unknown, and the first answer stands", func(t *testing.T) {
		pc, alt := loopbackPC(t), loopbackPC(t)
		natResponder(t, pc, 0, pcAddr(alt), false)
		natResponder(t, alt, 0, netip.AddrPort{}, true)
		tr := listen(t, cfg)
		rep, err := tr.DiscoverNAT(ctx, pcAddr(pc).String())
		require.NoError(t, err)
		require.Equal(t, MappingUnknown, rep.Mapping)
		require.Equal(t, tr.LocalAddr().AddrPort(), rep.Reflexive)
	})
	t.Run("no answer at all", func(t *testing.T) {
		pc := loopbackPC(t)
		natResponder(t, pc, 0, netip.AddrPort{}, true)
		tr := listen(t, cfg)
		sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := tr.DiscoverNAT(sctx, pcAddr(pc).String())
		require.ErrorIs(t, err, ErrSTUN)
	})
}

func TestPeerNATOf(t *testing.T) {
	ap := netip.MustParseAddrPort
	require.Equal(t, peerNAT{}, peerNATOf([]Candidate{{Kind: CandidateHost, Addr: ap("10.0.0.2:5000")}}))
	require.Equal(t, peerNAT{mapping: MappingEndpointIndependent, ip: ap("198.51.100.1:5000").Addr()},
		peerNATOf([]Candidate{{Kind: CandidateSrflx, Addr: ap("198.51.100.1:5000"), Mapping: MappingEndpointIndependent}}))
	require.Equal(t, peerNAT{mapping: MappingPerDestination, ip: ap("198.51.100.1:5000").Addr(), ports: []uint16{5000, 5001}},
		peerNATOf([]Candidate{
			{Kind: CandidateHost, Addr: ap("10.0.0.2:4000")},
			{Kind: CandidateSrflx, Addr: ap("198.51.100.1:5000"), Mapping: MappingPerDestination},
			{Kind: CandidateSrflx, Addr: ap("198.51.100.1:5001"), Mapping: MappingPerDestination},
			{Kind: CandidateRelay, Addr: ap("203.0.113.1:6000")},
		}))
}
