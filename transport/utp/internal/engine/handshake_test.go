package engine

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

func TestDuplicateSynAnswered(t *testing.T) {
	link := &recordLink{keep: true}
	ep := NewEndpoint(link, Config{})
	defer ep.Close()
	syn := wire.Header{Type: wire.Syn, ConnID: 500, SeqNr: 77, WndSize: 1 << 20}
	ep.DeliverDatagram(syn.Append(nil))
	ep.DeliverDatagram(syn.Append(nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := ep.Accept(ctx)
	require.NoError(t, err)
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_, err = ep.Accept(short)
	require.Error(t, err, "a duplicate SYN made a second connection")
	acks := link.packets(wire.State)
	require.Len(t, acks, 2, "SYN-ACKs")
	for _, a := range acks {
		require.Equal(t, uint16(500), a.ConnID, "SYN-ACK %+v", a)
		require.Equal(t, uint16(77), a.AckNr, "SYN-ACK %+v", a)
		require.Equal(t, acks[0].SeqNr, a.SeqNr, "SYN-ACK %+v", a)
	}
	// The peer's first data packet (seq 78) is delivered.
	data := wire.Header{Type: wire.Data, ConnID: 501, SeqNr: 78, AckNr: acks[0].SeqNr - 1, WndSize: 1 << 20}
	ep.DeliverDatagram(append(data.Append(nil), "hello"...))
	buf := make([]byte, 10)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	n, err := c.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf[:n]))
}

func TestBacklogOverflowRefused(t *testing.T) {
	link := &recordLink{keep: true}
	ep := NewEndpoint(link, Config{AcceptBacklog: 2})
	defer ep.Close()
	for id := uint16(10); id < 16; id += 2 {
		syn := wire.Header{Type: wire.Syn, ConnID: id, SeqNr: 1}
		ep.DeliverDatagram(syn.Append(nil))
	}
	resets := link.packets(wire.Reset)
	require.Len(t, resets, 1, "resets %+v, want one to connection 14", resets)
	require.Equal(t, uint16(14), resets[0].ConnID, "resets %+v, want one to connection 14", resets)
	require.Equal(t, int64(1), ep.Stats().Refused, "refused")
}

func TestUnknownConnectionReset(t *testing.T) {
	link := &recordLink{keep: true}
	ep := NewEndpoint(link, Config{})
	defer ep.Close()
	for _, id := range []uint16{7, 8} {
		h := wire.Header{Type: wire.Data, ConnID: id, SeqNr: 5}
		ep.DeliverDatagram(append(h.Append(nil), 'x'))
	}
	// A RESET is never answered, or two stacks would reset each other forever.
	h := wire.Header{Type: wire.Reset, ConnID: 9}
	ep.DeliverDatagram(h.Append(nil))
	resets := link.packets(wire.Reset)
	const want = "resets %+v, want to connections 6 and 9 (the peer's receive IDs)"
	require.Len(t, resets, 2, want, resets)
	require.Equal(t, uint16(6), resets[0].ConnID, want, resets)
	require.Equal(t, uint16(9), resets[1].ConnID, want, resets)
	ep.DeliverDatagram([]byte("not uTP at all, but long enough"))
	s := ep.Stats()
	require.Equal(t, int64(1), s.Malformed, "stats %+v", s)
	require.Equal(t, int64(3), s.UnknownConn, "stats %+v", s)
}

func TestCloseWhileDialling(t *testing.T) {
	link := &recordLink{}
	ep := NewEndpoint(link, Config{})
	errc := make(chan error, 1)
	go func() {
		_, err := ep.Dial(context.Background())
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	ep.Close()
	require.ErrorIs(t, <-errc, ErrClosed, "dial")
	_, err := ep.Accept(context.Background())
	require.ErrorIs(t, err, ErrClosed, "accept")
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("traffic", func(t *testing.T) {
		p := newPair(t, pairOpts{})
		ca, cb := p.connect(t)
		transfer(t, ca, cb, randomBytes(256<<10, 1))
		_ = ca.SetReadDeadline(time.Now().Add(time.Hour)) // a timer that Close must not leave behind
		ca.Close()
		cb.Close()
	})
	waitFor(t, "goroutines return to their number before the test", func() bool {
		return runtime.NumGoroutine() <= before
	}, 5*time.Second)
}

func TestResetKeepsDataReceived(t *testing.T) {
	link := &recordLink{keep: true}
	ep := NewEndpoint(link, Config{})
	defer ep.Close()
	syn := wire.Header{Type: wire.Syn, ConnID: 40, SeqNr: 9, WndSize: 1 << 20}
	ep.DeliverDatagram(syn.Append(nil))
	c, err := ep.Accept(context.Background())
	require.NoError(t, err)
	isn := link.packets(wire.State)[0].SeqNr
	data := wire.Header{Type: wire.Data, ConnID: 41, SeqNr: 10, AckNr: isn - 1, WndSize: 1 << 20}
	ep.DeliverDatagram(append(data.Append(nil), "complete response"...))
	reset := wire.Header{Type: wire.Reset, ConnID: 41, SeqNr: 11}
	ep.DeliverDatagram(reset.Append(nil))
	got, err := io.ReadAll(c)
	require.Equal(t, "complete response", string(got))
	require.ErrorIs(t, err, ErrReset)
}

// TestDuplicateReported checks both ends of the duplicate report: the
// receiver names a packet that arrived twice, and a sender that resent that
// packet counts the resend as needless.
func TestDuplicateReported(t *testing.T) {
	link := &recordLink{keep: true}
	ep := NewEndpoint(link, Config{})
	defer ep.Close()
	syn := wire.Header{Type: wire.Syn, ConnID: 60, SeqNr: 20, WndSize: 1 << 20}
	ep.DeliverDatagram(syn.Append(nil))
	c, err := ep.Accept(context.Background())
	require.NoError(t, err)
	isn := link.packets(wire.State)[0].SeqNr
	data := wire.Header{Type: wire.Data, ConnID: 61, SeqNr: 21, AckNr: isn - 1, WndSize: 1 << 20}
	pkt := append(data.Append(nil), "once"...)
	ep.DeliverDatagram(pkt)
	ep.DeliverDatagram(pkt)
	var reports []uint16
	for _, h := range link.packets(wire.State) {
		if h.HasDuplicate {
			reports = append(reports, h.Duplicate)
		}
	}
	require.Equal(t, []uint16{21}, reports, "duplicate reports")

	// Our side: a packet resent after a timeout, then reported as a
	// duplicate by the peer, was resent needlessly.
	c.mu.Lock()
	c.q = append(c.q, segment{typ: wire.Data, seq: c.sndNxt, buf: c.copyPayload([]byte("x"))})
	c.sndNxt++
	c.queued++
	c.unsent++
	c.flush(time.Now())
	c.onRTO(time.Now())
	c.flush(time.Now())
	seq := c.q[0].seq
	c.mu.Unlock()
	report := wire.Header{Type: wire.State, ConnID: 61, SeqNr: 22, AckNr: seq, WndSize: 1 << 20, Duplicate: seq,
		HasDuplicate: true}
	ep.DeliverDatagram(report.Append(nil))
	s := ep.Stats()
	require.Equal(t, int64(1), s.SpuriousRetransmits, "stats %+v", s)
	require.Equal(t, int64(1), s.Retransmits, "stats %+v", s)
}
