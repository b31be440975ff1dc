package natprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v2"
)

// errNoAnswer is a request that got no answer after every attempt: in the
// filtering test, the answer itself.
var errNoAnswer = errors.New("no answer")

type client struct {
	pc  *net.UDPConn
	cfg Config
}

type answer struct {
	mapped, other netip.AddrPort
}

// binding sends a Binding request to server (asking it to answer from its
// other port when changePort) and waits for the answer, retransmitting.
func (c *client) binding(ctx context.Context, server netip.AddrPort, changePort bool) (answer, error) {
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	if changePort {
		setters = append(setters, changeRequest{port: true})
	}
	setters = append(setters, stun.Fingerprint)
	req, err := stun.Build(setters...)
	if err != nil {
		return answer{}, err
	}
	var got answer
	err = c.exchange(ctx, req.Raw, server, func(b []byte, _ netip.AddrPort) bool {
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		if m.Decode() != nil || m.TransactionID != req.TransactionID {
			return false
		}
		if m.Type != stun.BindingSuccess {
			var code stun.ErrorCodeAttribute
			if code.GetFrom(m) == nil {
				err = fmt.Errorf("error response %d %s", code.Code, code.Reason)
			} else {
				err = fmt.Errorf("unexpected %v", m.Type)
			}
			return true
		}
		var xor stun.XORMappedAddress
		if e := xor.GetFrom(m); e != nil {
			err = errors.New("answer carries no XOR-MAPPED-ADDRESS")
			return true
		}
		got.mapped = addrPort(xor.IP, xor.Port)
		var other stun.OtherAddress
		if other.GetFrom(m) == nil {
			got.other = addrPort(other.IP, other.Port)
		}
		return true
	})
	if err != nil {
		return answer{}, err
	}
	if !got.mapped.IsValid() {
		return answer{}, errors.New("answer carries an invalid address")
	}
	return got, nil
}

// hairpin sends a Binding request to our own public address and reports
// whether the NAT turned it back to us.
func (c *client) hairpin(ctx context.Context, self netip.AddrPort) bool {
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return false
	}
	err = c.exchange(ctx, req.Raw, self, func(b []byte, _ netip.AddrPort) bool {
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		return m.Decode() == nil && m.Type == stun.BindingRequest && m.TransactionID == req.TransactionID
	})
	return err == nil
}

// exchange sends b to `to` until done accepts a datagram or the attempts run
// out (errNoAnswer) or ctx ends.
func (c *client) exchange(ctx context.Context, b []byte, to netip.AddrPort, done func([]byte, netip.AddrPort) bool) error {
	buf := make([]byte, 1500)
	wait := c.cfg.Retransmit
	for range c.cfg.Attempts {
		if _, err := c.pc.WriteToUDPAddrPort(b, to); err != nil {
			return fmt.Errorf("sending to %s: %w", to, err)
		}
		deadline := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.pc.SetReadDeadline(deadline)
		for {
			n, from, err := c.pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					break
				}
				return err
			}
			if done(buf[:n], from) {
				return nil
			}
		}
		wait *= 2
	}
	return errNoAnswer
}

func addrPort(ip net.IP, port int) netip.AddrPort {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port <= 0 || port > 65535 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}

// changeRequest is RFC 5780's CHANGE-REQUEST attribute, which pion/stun names
// (AttrChangeRequest) but does not build.
type changeRequest struct{ ip, port bool }

func (c changeRequest) AddTo(m *stun.Message) error {
	var v byte
	if c.ip {
		v |= 0x04
	}
	if c.port {
		v |= 0x02
	}
	m.Add(stun.AttrChangeRequest, []byte{0, 0, 0, v})
	return nil
}
