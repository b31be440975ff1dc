package engine

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// acceptRaw opens a connection from a hand-made SYN (the peer's connection
// ID id, first sequence number seq) and returns it with our initial sequence
// number.
func acceptRaw(t *testing.T, ep *Endpoint, link *recordLink, id, seq uint16) (*Conn, uint16) {
	t.Helper()
	syn := wire.Header{Type: wire.Syn, ConnID: id, SeqNr: seq, WndSize: 1 << 20}
	ep.DeliverDatagram(syn.Append(nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := ep.Accept(ctx)
	require.NoError(t, err)
	acks := link.packets(wire.State)
	return c, acks[len(acks)-1].SeqNr
}

func dataPacket(connID, seq, ack uint16, payload string) []byte {
	h := wire.Header{Type: wire.Data, ConnID: connID, SeqNr: seq, AckNr: ack, WndSize: 1 << 20}
	return append(h.Append(nil), payload...)
}

// A run of datagrams delivered together is acknowledged once, after the last,
// and its data reads in order.
func TestDeliverDatagramsAcksOncePerRun(t *testing.T) {
	link := &recordLink{keep: true}
	ep := NewEndpoint(link, Config{})
	defer ep.Close()
	c, isn := acceptRaw(t, ep, link, 40, 10)
	before := len(link.packets(wire.State))

	var batch [][]byte
	want := ""
	for i := range 10 {
		p := fmt.Sprintf("part %d;", i)
		want += p
		batch = append(batch, dataPacket(41, uint16(11+i), isn-1, p))
	}
	ep.DeliverDatagrams(batch)

	acks := link.packets(wire.State)[before:]
	require.Len(t, acks, 1, "acknowledgements of a run of 10 packets")
	require.Equal(t, uint16(20), acks[0].AckNr, "the acknowledgement covers the whole run")
	got := make([]byte, len(want))
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, want, string(got))
}

// A batch mixing two connections, a SYN, a malformed datagram and one for an
// unknown connection gives each what is its own, in order.
func TestDeliverDatagramsMixedBatch(t *testing.T) {
	link := &recordLink{keep: true}
	ep := NewEndpoint(link, Config{})
	defer ep.Close()
	c1, isn1 := acceptRaw(t, ep, link, 40, 10)
	c2, isn2 := acceptRaw(t, ep, link, 60, 30)
	syn := wire.Header{Type: wire.Syn, ConnID: 80, SeqNr: 5, WndSize: 1 << 20}
	ep.DeliverDatagrams([][]byte{
		dataPacket(41, 11, isn1-1, "a1"),
		dataPacket(41, 12, isn1-1, "a2"),
		dataPacket(61, 31, isn2-1, "b1"),
		{0xff, 0x00},    // malformed
		syn.Append(nil), // a new connection in the middle of the batch
		dataPacket(41, 13, isn1-1, "a3"),
		dataPacket(99, 1, 1, "?"), // no such connection
		dataPacket(61, 32, isn2-1, "b2"),
	})
	read := func(c *Conn, n int) string {
		b := make([]byte, n)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := io.ReadFull(c, b)
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, "a1a2a3", read(c1, 6))
	require.Equal(t, "b1b2", read(c2, 4))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c3, err := ep.Accept(ctx)
	require.NoError(t, err)
	require.Equal(t, uint16(80), c3.sendID, "the SYN's connection")
	s := ep.Stats()
	require.Equal(t, int64(1), s.Malformed, "stats %+v", s)
	require.Equal(t, int64(1), s.UnknownConn, "stats %+v", s)
	resets := link.packets(wire.Reset)
	require.Len(t, resets, 1, "resets %+v", resets)
	require.Equal(t, uint16(98), resets[0].ConnID, "the reset goes to the unknown connection's pair")
}
