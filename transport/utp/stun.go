package utp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v2"
)

type stunReply struct {
	addr  netip.AddrPort
	other netip.AddrPort // the server's OTHER-ADDRESS (RFC 5780), when it gave one
	err   error
}

// isSTUN reports whether b is framed like a STUN message: stun.IsMessage (a whole header and the magic cookie), plus
// the top two bits zero and a length field that matches the datagram. A uTP packet (first byte 0x?1) would need a
// timestamp equal to the cookie and a connection ID equal to its own length to pass.
func isSTUN(b []byte) bool {
	return stun.IsMessage(b) && b[0]&0xC0 == 0 && int(binary.BigEndian.Uint16(b[2:4]))+20 == len(b) && len(b)%4 == 0
}

// DiscoverSTUN asks the STUN server (host:port) for this socket's server-reflexive address: the address and port
// the server saw our request come from, i.e. our public endpoint when behind a NAT. Requests are retransmitted as
// RFC 5389 describes, with timings scaled down (Config.STUNRetransmit, doubling); it gives up when ctx ends or, if
// ctx has no deadline, after Config.STUNTimeout. Failures wrap ErrSTUN.
func (t *Transport) DiscoverSTUN(ctx context.Context, server string) (netip.AddrPort, error) {
	r, err := t.stunBinding(ctx, server)
	return r.addr, err
}

// stunBinding runs one STUN Binding transaction with server (see DiscoverSTUN) and returns the answer: our mapped
// address and, when the server has a second one, its OTHER-ADDRESS.
func (t *Transport) stunBinding(ctx context.Context, server string) (stunReply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.STUNTimeout)
		defer cancel()
	}
	raddr, err := net.ResolveUDPAddr(t.network(), server)
	if err != nil {
		return stunReply{}, fmt.Errorf("%w: resolving server %q: %w", ErrSTUN, server, err)
	}
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return stunReply{}, fmt.Errorf("%w: %w", ErrSTUN, err)
	}
	reply := make(chan stunReply, 1)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return stunReply{}, ErrTransportClosed
	}
	t.stunWait[req.TransactionID] = reply
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.stunWait, req.TransactionID)
		t.mu.Unlock()
	}()

	rto := t.cfg.STUNRetransmit
	timer := time.NewTimer(0)
	defer timer.Stop()
	sent := 0
	for {
		select {
		case r := <-reply:
			if r.err != nil {
				return stunReply{}, fmt.Errorf("%w: server %s: %w", ErrSTUN, server, r.err)
			}
			return r, nil
		case <-timer.C:
			if _, err := t.send(req.Raw, raddr); err != nil {
				return stunReply{}, fmt.Errorf("%w: sending to %s: %w", ErrSTUN, server, err)
			}
			sent++
			timer.Reset(rto)
			if rto < 8*t.cfg.STUNRetransmit {
				rto *= 2
			}
		case <-ctx.Done():
			return stunReply{}, fmt.Errorf("%w: no response from %s to %d requests: %w", ErrSTUN, server, sent, ctx.Err())
		case <-t.done:
			return stunReply{}, ErrTransportClosed
		}
	}
}

// handleSTUN delivers a STUN response to the DiscoverSTUN call waiting for its transaction and reports whether one
// was; the caller offers anything else to the TURN clients of our relays (we never answer STUN requests).
func (t *Transport) handleSTUN(b []byte, from netip.AddrPort) bool {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return false
	}
	t.mu.Lock()
	reply := t.stunWait[m.TransactionID]
	t.mu.Unlock()
	if reply == nil {
		return false
	}
	var r stunReply
	switch m.Type {
	case stun.BindingSuccess:
		r.addr, r.err = mappedAddress(m)
		var other stun.OtherAddress
		if other.GetFrom(m) == nil {
			if a, ok := netip.AddrFromSlice(other.IP); ok && other.Port > 0 && other.Port <= 65535 {
				r.other = netip.AddrPortFrom(a.Unmap(), uint16(other.Port))
			}
		}
	case stun.BindingError:
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(m); err != nil {
			r.err = errors.New("error response without an error code")
		} else {
			r.err = fmt.Errorf("error response %d %s", code.Code, code.Reason)
		}
	default:
		return true
	}
	select {
	case reply <- r:
	default:
	}
	return true
}

func mappedAddress(m *stun.Message) (netip.AddrPort, error) {
	var ip net.IP
	var port int
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(m); err == nil {
		ip, port = xor.IP, xor.Port
	} else {
		var mapped stun.MappedAddress
		if err := mapped.GetFrom(m); err != nil {
			return netip.AddrPort{}, errors.New("response carries no (XOR-)MAPPED-ADDRESS")
		}
		ip, port = mapped.IP, mapped.Port
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port <= 0 || port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("response carries an invalid address %v:%d", ip, port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}
