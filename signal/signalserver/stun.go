package signalserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v2"
)

// ServeSTUN answers RFC 5389 Binding requests on pc with the sender's address
// in XOR-MAPPED-ADDRESS (plus FINGERPRINT, and nothing else: an answer is 40
// bytes, at most twice the smallest request), until ctx ends (then it returns
// nil) or pc fails. Datagrams that are not well-formed Binding requests,
// carry a bad FINGERPRINT, or exceed the per-source rate (STUNRatePerIP,
// which caps reflection at spoofed victims; its memory is fixed whatever the
// number of sources) are dropped and counted in
// p2phttp_signal_stun_ignored_total. The caller owns pc.
func (s *Server) ServeSTUN(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 1500)
	req, res := new(stun.Message), new(stun.Message)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		if reason := s.answerSTUN(buf[:n], ua.AddrPort(), req, res); reason != "" {
			s.metrics.stunIgnored.WithLabelValues(reason).Inc()
			continue
		}
		if _, err := pc.WriteTo(res.Raw, addr); err != nil {
			s.log.Debug("signalserver: stun write", "to", addr, "err", err)
			s.metrics.stunIgnored.WithLabelValues("write_error").Inc()
			continue
		}
		s.metrics.stunAnswered.Inc()
	}
}

// answerSTUN builds in res the answer to the datagram b from `from`, or
// returns why there is none.
func (s *Server) answerSTUN(b []byte, from netip.AddrPort, req, res *stun.Message) (ignored string) {
	if !stun.IsMessage(b) {
		return "not_stun"
	}
	req.Reset()
	req.Raw = append(req.Raw[:0], b...)
	if err := req.Decode(); err != nil {
		return "malformed"
	}
	if req.Type != stun.BindingRequest {
		return "not_binding_request"
	}
	if req.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(req) != nil {
		return "bad_fingerprint"
	}
	if ok, _ := s.stunRate.allow(clientOf(from.Addr()).ip, time.Now()); !ok {
		return "rate_limited"
	}
	ip := from.Addr().Unmap()
	err := res.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ip.AsSlice(), Port: int(from.Port())}, stun.Fingerprint)
	if err != nil {
		return "build_error"
	}
	return ""
}
