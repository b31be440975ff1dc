package engine

import (
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

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
	if err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if c2, err := ep.Accept(short); err == nil {
		t.Fatalf("a duplicate SYN made a second connection %v", c2.RemoteAddr())
	}
	acks := link.packets(wire.State)
	if len(acks) != 2 {
		t.Fatalf("%d SYN-ACKs, want 2", len(acks))
	}
	for _, a := range acks {
		if a.ConnID != 500 || a.AckNr != 77 || a.SeqNr != acks[0].SeqNr {
			t.Fatalf("SYN-ACK %+v", a)
		}
	}
	// The peer's first data packet (seq 78) is delivered.
	data := wire.Header{Type: wire.Data, ConnID: 501, SeqNr: 78, AckNr: acks[0].SeqNr - 1, WndSize: 1 << 20}
	ep.DeliverDatagram(append(data.Append(nil), "hello"...))
	buf := make([]byte, 10)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
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
	if len(resets) != 1 || resets[0].ConnID != 14 {
		t.Fatalf("resets %+v, want one to connection 14", resets)
	}
	if got := ep.Stats().Refused; got != 1 {
		t.Fatalf("refused %d", got)
	}
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
	if len(resets) != 2 || resets[0].ConnID != 6 || resets[1].ConnID != 9 {
		t.Fatalf("resets %+v, want to connections 6 and 9 (the peer's receive IDs)", resets)
	}
	ep.DeliverDatagram([]byte("not uTP at all, but long enough"))
	if s := ep.Stats(); s.Malformed != 1 || s.UnknownConn != 3 {
		t.Fatalf("stats %+v", s)
	}
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
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("dial: %v", err)
	}
	if _, err := ep.Accept(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("accept: %v", err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	isn := link.packets(wire.State)[0].SeqNr
	data := wire.Header{Type: wire.Data, ConnID: 41, SeqNr: 10, AckNr: isn - 1, WndSize: 1 << 20}
	ep.DeliverDatagram(append(data.Append(nil), "complete response"...))
	reset := wire.Header{Type: wire.Reset, ConnID: 41, SeqNr: 11}
	ep.DeliverDatagram(reset.Append(nil))
	got, err := io.ReadAll(c)
	if string(got) != "complete response" || !errors.Is(err, ErrReset) {
		t.Fatalf("read %q, %v", got, err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
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
	if len(reports) != 1 || reports[0] != 21 {
		t.Fatalf("duplicate reports %v, want [21]", reports)
	}

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
	if s := ep.Stats(); s.SpuriousRetransmits != 1 || s.Retransmits != 1 {
		t.Fatalf("stats %+v", s)
	}
}
