package engine

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/utp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/netem"
)

// lossyConn sends what is written through a netem link while lossy is set,
// and straight to the socket otherwise.
type lossyConn struct {
	net.PacketConn
	link  *netem.Link
	lossy atomic.Bool
}

func newLossyConn(pc net.PacketConn, im netem.Impairment, seed uint64) *lossyConn {
	c := &lossyConn{PacketConn: pc}
	c.link = netem.NewLink(im, seed, func(p netem.Packet) { _, _ = pc.WriteTo(p.Data, p.Addr) })
	c.lossy.Store(true)
	return c
}

func (c *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.lossy.Load() {
		c.link.Send(netem.Packet{Data: b, Addr: addr})
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

// interopPair puts our endpoint on a UDP socket, pointed at an anacrolix/utp
// socket on another; each loses 2% of what it sends until calm is called.
func interopPair(t *testing.T) (ep *Endpoint, theirs *utp.Socket, calm func()) {
	t.Helper()
	loss := netem.Impairment{Loss: 0.02}
	theirPC := newLossyConn(listenUDP(t), loss, 4)
	theirs, err := utp.NewSocketFromPacketConn(theirPC)
	require.NoError(t, err)
	pc := newLossyConn(listenUDP(t), loss, 3)
	ep = NewEndpoint(&udpLink{pc: pc, peer: theirs.Addr(), safe: 1200, max: 1472}, Config{})
	var wg sync.WaitGroup
	readLoop(pc, ep, &wg)
	t.Cleanup(func() {
		ep.Close()
		pc.Close()
		wg.Wait()
		theirs.CloseNow()
		pc.link.Close()
		theirPC.link.Close()
	})
	return ep, theirs, func() {
		pc.lossy.Store(false)
		theirPC.lossy.Store(false)
	}
}

// exchange sends 16 MiB each way at once between our conn and theirs and
// checks both arrive byte for byte. Ours half-closes when its data is out;
// theirs (which cannot half-close) closes once it read everything and wrote
// its part.
func exchange(t *testing.T, ours *Conn, theirs net.Conn, calm func()) {
	const size = 16 << 20
	toThem, toUs := randomBytes(size, 21), randomBytes(size, 22)
	deadline := time.Now().Add(120 * time.Second)
	_ = ours.SetDeadline(deadline)
	_ = theirs.SetDeadline(deadline)
	var wg sync.WaitGroup
	var ourWriteErr, theirWriteErr, theirReadErr error
	var theyGot []byte
	wg.Add(2)
	go func() {
		defer wg.Done()
		if _, ourWriteErr = ours.Write(toThem); ourWriteErr == nil {
			ourWriteErr = ours.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		writeDone := make(chan struct{})
		go func() {
			defer close(writeDone)
			_, theirWriteErr = theirs.Write(toUs)
		}()
		theyGot, theirReadErr = io.ReadAll(theirs)
		<-writeDone
	}()
	weGot, ourReadErr := io.ReadAll(io.LimitReader(ours, size))
	wg.Wait()
	require.NoError(t, ourWriteErr, "our write")
	require.NoError(t, theirWriteErr, "their write")
	require.NoError(t, theirReadErr, "their read")
	require.NoError(t, ourReadErr, "our read")
	require.True(t, bytes.Equal(theyGot, toThem), "they got %d bytes, want %d byte-exact", len(theyGot), size)
	require.True(t, bytes.Equal(weGot, toUs), "we got %d bytes, want %d byte-exact", len(weGot), size)
	// Their close ends our read side with a clean EOF. They send their FIN
	// only once, never again if it is lost: so the close runs without loss.
	calm()
	require.NoError(t, theirs.Close())
	n, err := ours.Read(make([]byte, 1))
	require.Zero(t, n, "after their close")
	require.Same(t, io.EOF, err, "after their close: %v", err) // io.EOF itself, unwrapped
	ours.Close()
}

func TestInteropOurDialler(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MiB each way")
	}
	ep, theirs, calm := interopPair(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := theirs.Accept()
		assert.NoError(t, err)
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ours, err := ep.Dial(ctx)
	require.NoError(t, err)
	c := <-accepted
	require.NotNil(t, c)
	exchange(t, ours, c, calm)
	t.Logf("ours: %+v", ep.Stats())
}

func TestInteropTheirDialler(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MiB each way")
	}
	ep, theirs, calm := interopPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Our socket's address, as their Dial needs it: the link's local one.
	addr := ep.link.(*udpLink).pc.LocalAddr().String()
	dialled := make(chan net.Conn, 1)
	go func() {
		c, err := theirs.DialContext(ctx, "udp4", addr)
		assert.NoError(t, err)
		dialled <- c
	}()
	ours, err := ep.Accept(ctx)
	require.NoError(t, err)
	c := <-dialled
	require.NotNil(t, c)
	exchange(t, ours, c, calm)
	t.Logf("ours: %+v", ep.Stats())
}
