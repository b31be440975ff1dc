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
	return s.ServeSTUNPair(ctx, pc, nil)
}

// ServeSTUNPair is ServeSTUN on two sockets of one host, pc and alt (two
// ports), with what RFC 5780's NAT behaviour discovery needs from a server
// with one IP address: every answer carries OTHER-ADDRESS, the other socket's
// address, and a request whose CHANGE-REQUEST asks for another port is
// answered from the other socket. A request for another IP address gets a
// 420 error (this server has one). With a nil alt it is ServeSTUN, and a
// CHANGE-REQUEST gets the 420. Both sockets share the per-source rate. It
// returns when ctx ends (nil) or either socket fails. The caller owns both.
func (s *Server) ServeSTUNPair(ctx context.Context, pc, alt net.PacketConn) error {
	if alt == nil {
		return s.serveSTUN(ctx, pc, nil)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- s.serveSTUN(ctx, pc, alt) }()
	go func() { errs <- s.serveSTUN(ctx, alt, pc) }()
	first := <-errs
	cancel()
	return errors.Join(first, <-errs)
}

// serveSTUN answers the requests that arrive on pc; other, if not nil, is
// the second socket.
func (s *Server) serveSTUN(ctx context.Context, pc, other net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Now()) })
	defer stop()
	var otherAddr netip.AddrPort
	if other != nil {
		otherAddr = s.publicSTUNAddr(other)
	}
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
		change, reason := s.answerSTUN(buf[:n], ua.AddrPort(), otherAddr, req, res)
		if reason != "" {
			s.metrics.stunIgnored.WithLabelValues(reason).Inc()
			continue
		}
		from := pc
		if change {
			from = other
		}
		if _, err := from.WriteTo(res.Raw, addr); err != nil {
			s.log.Debug("signalserver: stun write", "to", addr, "err", err)
			s.metrics.stunIgnored.WithLabelValues("write_error").Inc()
			continue
		}
		s.metrics.stunAnswered.Inc()
	}
}

// publicSTUNAddr is the address of the STUN socket pc as clients reach it:
// its bound address, with Config.PublicIP for an unspecified one.
func (s *Server) publicSTUNAddr(pc net.PacketConn) netip.AddrPort {
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() && s.cfg.PublicIP.IsValid() {
		ip = s.cfg.PublicIP
	}
	return netip.AddrPortFrom(ip, ap.Port())
}

// CHANGE-REQUEST flags (RFC 5780 section 7.2).
const (
	changeIP   = 0x04
	changePort = 0x02
)

// answerSTUN builds in res the answer to the datagram b from `from`, or
// returns why there is none. other is the second socket's address (invalid
// when there is none); change reports that the answer must leave from it.
func (s *Server) answerSTUN(b []byte, from, other netip.AddrPort, req, res *stun.Message) (change bool, ignored string) {
	if !stun.IsMessage(b) {
		return false, "not_stun"
	}
	req.Reset()
	req.Raw = append(req.Raw[:0], b...)
	if err := req.Decode(); err != nil {
		return false, "malformed"
	}
	if req.Type != stun.BindingRequest {
		return false, "not_binding_request"
	}
	if req.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(req) != nil {
		return false, "bad_fingerprint"
	}
	if ok, _ := s.stunRate.allow(clientOf(from.Addr()).ip, time.Now()); !ok {
		return false, "rate_limited"
	}
	if v, err := req.Get(stun.AttrChangeRequest); err == nil {
		if len(v) != 4 {
			return false, "malformed"
		}
		change = v[3]&changePort != 0
		if v[3]&changeIP != 0 || change && !other.IsValid() {
			// One address (or one port) only: say we cannot, as RFC 5780
			// asks of a server without the alternate address.
			err := res.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingError,
				stun.CodeUnknownAttribute, stun.UnknownAttributes{stun.AttrChangeRequest}, stun.Fingerprint)
			if err != nil {
				return false, "build_error"
			}
			return false, ""
		}
	}
	ip := from.Addr().Unmap()
	setters := []stun.Setter{stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ip.AsSlice(), Port: int(from.Port())}}
	if other.IsValid() {
		setters = append(setters, &stun.OtherAddress{IP: other.Addr().AsSlice(), Port: int(other.Port())})
	}
	if err := res.Build(append(setters, stun.Fingerprint)...); err != nil {
		return false, "build_error"
	}
	return change, ""
}
