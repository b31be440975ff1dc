package engine

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// recordLink decodes every datagram sent and, if keep is set, keeps the
// headers (without selective ACKs); it never fails.
type recordLink struct {
	keep bool
	mu   sync.Mutex
	sent []wire.Header
	at   []time.Time // when each kept header was sent
}

func (l *recordLink) WriteDatagrams(bufs [][]byte) error {
	for _, b := range bufs {
		var h wire.Header
		if _, err := h.Decode(b); err != nil {
			panic(fmt.Sprintf("engine sent an undecodable packet: %v", err))
		}
		if l.keep {
			h.SACK = nil
			l.mu.Lock()
			l.sent = append(l.sent, h)
			l.at = append(l.at, time.Now())
			l.mu.Unlock()
		}
	}
	return nil
}

// packets returns the headers sent so far of type t.
func (l *recordLink) packets(t wire.Type) []wire.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []wire.Header
	for _, h := range l.sent {
		if h.Type == t {
			out = append(out, h)
		}
	}
	return out
}

func (l *recordLink) DatagramSizes() (int, int) { return 1200, 1472 }

// payloadFor is the fuzz peer's payload for a sequence number: its content
// and length derive from it, so the reassembled stream can be checked.
func payloadFor(seq uint16) []byte {
	b := make([]byte, 1+int(seq%7)*3)
	for i := range b {
		b[i] = byte(seq) ^ byte(i)
	}
	return b
}

// checkInvariants reports a broken accounting of c's buffers.
func (c *Conn) checkInvariants() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inflight, lost, limbo, queued, unsent := 0, 0, 0, 0, 0
	for i := range c.q {
		s := &c.q[i]
		if i >= c.sent && (s.inFlight || s.lost || s.limbo) {
			return fmt.Errorf("unsent segment %d in flight, lost or in limbo", i)
		}
		if s.inFlight && s.limbo || s.inFlight && s.lost || s.lost && s.limbo {
			return fmt.Errorf("segment %d in two states: in flight %v, lost %v, limbo %v", i, s.inFlight, s.lost, s.limbo)
		}
		if s.limbo {
			limbo++
		}
		if s.inFlight {
			inflight += s.size
		}
		if s.lost {
			lost++
		}
		if s.seq != c.sndUna+uint16(i) {
			return fmt.Errorf("segment %d has seq %d, want %d", i, s.seq, c.sndUna+uint16(i))
		}
		queued += len(s.payload())
		if i >= c.sent {
			unsent += len(s.payload())
		}
	}
	switch {
	case c.state == stateDead:
		return nil
	case inflight != c.inflight:
		return fmt.Errorf("inflight %d, segments say %d", c.inflight, inflight)
	case limbo != c.limbo:
		return fmt.Errorf("limbo %d, segments say %d", c.limbo, limbo)
	case lost != c.lostPending:
		return fmt.Errorf("lostPending %d, segments say %d", c.lostPending, lost)
	case unsent != c.unsent:
		return fmt.Errorf("unsent %d, segments say %d", c.unsent, unsent)
	case queued != c.queued:
		return fmt.Errorf("queued %d, segments say %d", c.queued, queued)
	case c.rqBytes+c.oooBytes > c.ep.cfg.ReceiveWindow:
		return fmt.Errorf("buffers %d+%d over the window", c.rqBytes, c.oooBytes)
	}
	ooo := 0
	for _, s := range c.ooo {
		if s != nil {
			ooo += bufLen(s.buf)
		}
	}
	if ooo != c.oooBytes {
		return fmt.Errorf("oooBytes %d, slots say %d", c.oooBytes, ooo)
	}
	return nil
}

// FuzzReceivePath feeds an accepted connection packets with fuzzed types,
// sequence and acknowledgement numbers and selective ACKs, around a transfer
// in both directions, and checks the accounting after each and that what
// Read returns is the peer's stream in order.
func FuzzReceivePath(f *testing.F) {
	f.Add([]byte{0, 17, 8, 0, 0, 19, 8, 1, 0xff, 0xff, 0, 0, 0, 18, 9, 0})
	f.Add([]byte{0, 20, 10, 2, 0x0f, 0, 0, 0, 1, 0, 0, 0, 0, 16, 18, 0, 1, 17, 18, 0})
	f.Add([]byte{2, 16, 12, 1, 0xaa, 0x55, 0, 0, 2, 16, 13, 0, 2, 16, 13, 0, 2, 16, 13, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		link := &recordLink{}
		ep := NewEndpoint(link, Config{ReceiveWindow: 4 << 10, MTUProbeInterval: -1})
		defer ep.Close()
		const peerISN = 65530 // the peer's sequence numbers wrap
		syn := wire.Header{Type: wire.Syn, ConnID: 100, SeqNr: peerISN, WndSize: 1 << 20}
		ep.DeliverDatagram(syn.Append(nil))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := ep.Accept(ctx)
		require.NoError(t, err)
		_, err = c.Write(bytes.Repeat([]byte("x"), 20000))
		require.NoError(t, err)
		c.mu.Lock()
		ourISN := c.isn
		c.mu.Unlock()
		for len(in) >= 4 {
			typ := wire.Type(in[0] % 5)
			seq := peerISN + 1 + uint16(int(in[1])-16)
			ack := ourISN + uint16(int(in[2])-8)
			n := int(in[3]%3) * 4
			in = in[4:]
			var sack []byte
			if n > 0 && len(in) >= n {
				sack, in = in[:n], in[n:]
			}
			h := wire.Header{Type: typ, ConnID: 101, SeqNr: seq, AckNr: ack, WndSize: 1 << 20, SACK: sack}
			if typ == wire.Syn {
				h.ConnID, h.SeqNr = 100, peerISN
			}
			b := h.Append(nil)
			if typ == wire.Data {
				b = append(b, payloadFor(seq)...)
			}
			ep.DeliverDatagram(b)
			require.NoError(t, c.checkInvariants())
		}
		var want []byte
		for seq := uint16(peerISN + 1); ; seq++ {
			want = append(want, payloadFor(seq)...)
			if len(want) > 1<<16 {
				break
			}
		}
		_ = c.SetReadDeadline(time.Now())
		var got []byte
		buf := make([]byte, 1000)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		// The stream is the peer's payloads in order, except that a FIN
		// ends it: only a prefix is checked.
		require.True(t, bytes.HasPrefix(want, got), "read %x, not a prefix of the peer's stream", got)
	})
}
