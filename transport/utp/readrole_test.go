package utp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/netem"
	"github.com/stretchr/testify/require"
)

// roleConfig is fastConfig with the default DeadPathTimeout: these tests check wakes, and a loaded machine must not
// kill their paths.
func roleConfig() Config {
	cfg := fastConfig()
	cfg.DeadPathTimeout = 30 * time.Second
	return cfg
}

// waitReaderHolds waits until a stream's Read reads tr's socket itself (it holds the read role).
func waitReaderHolds(t *testing.T, tr *Transport) {
	t.Helper()
	require.NotNil(t, tr.role.uc, "a Transport on a plain UDP socket lets its readers read it")
	require.Eventually(t, func() bool {
		tr.role.mu.Lock()
		defer tr.role.mu.Unlock()
		return tr.role.holder == roleReader && tr.role.reading.Load()
	}, 10*time.Second, time.Millisecond, "no Read took the socket")
}

// readAsync reads once from c in a goroutine.
func readAsync(c net.Conn, n int) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		b := make([]byte, n)
		k, err := c.Read(b)
		ch <- readResult{b[:k], err}
	}()
	return ch
}

type readResult struct {
	b   []byte
	err error
}

func TestReaderGraceConfig(t *testing.T) {
	require.Equal(t, time.Millisecond, Config{}.withDefaults().ReaderGrace)
	require.NotNil(t, listen(t, Config{}).role.uc)
	require.Nil(t, listen(t, Config{ReaderGrace: -1}).role.uc, "negative: the background goroutine alone reads")
	tr, _ := wrapped(t, Config{}, netem.Config{})
	require.Nil(t, tr.role.uc, "a wrapped socket cannot be kicked out of a read: the background goroutine alone reads it")
}

// A request/response exchange reads the socket in the stream's Read, and its bytes arrive intact, over many rounds.
func TestPingPongReadsInCaller(t *testing.T) {
	a, b := listen(t, roleConfig()), listen(t, roleConfig())
	pa, pb := connectPair(t, a, b)
	c1, c2 := openPair(t, pa, pb)
	go func() {
		buf := make([]byte, 100)
		for {
			if _, err := io.ReadFull(c2, buf); err != nil {
				return
			}
			for i := range buf {
				buf[i]++
			}
			if _, err := c2.Write(buf); err != nil {
				return
			}
		}
	}()
	req, resp := make([]byte, 100), make([]byte, 100)
	for round := range 500 {
		for i := range req {
			req[i] = byte(round + i)
		}
		_, err := c1.Write(req)
		require.NoError(t, err)
		_, err = io.ReadFull(c1, resp)
		require.NoError(t, err)
		for i := range resp {
			require.Equal(t, req[i]+1, resp[i], "round %d byte %d", round, i)
		}
	}
}

// A read deadline ends a Read that reads the socket itself, whether set before the Read or while it waits, and the
// socket's deadline does not outlive it: the next Read gets its data. The peer's datagrams come another way while
// the Read waits, so that nothing but the deadline ends its socket read.
func TestReadDeadlineWhileReadingSocket(t *testing.T) {
	a, _, c1, c2, div := divertedPair(t)

	require.NoError(t, c1.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err := c1.Read(make([]byte, 10))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	require.NoError(t, c1.SetReadDeadline(time.Time{}))
	res := readAsync(c1, 10)
	waitReaderHolds(t, a)
	div.on.Store(true)
	require.NoError(t, c1.SetReadDeadline(time.Now().Add(-time.Second)))
	r := <-res
	require.ErrorIs(t, r.err, os.ErrDeadlineExceeded)
	div.on.Store(false)

	require.NoError(t, c1.SetReadDeadline(time.Time{}))
	res = readAsync(c1, 10)
	waitReaderHolds(t, a)
	_, err = c2.Write([]byte("after"))
	require.NoError(t, err)
	r = <-res
	require.NoError(t, r.err)
	require.Equal(t, "after", string(r.b))
}

// Closing the stream, its path or the Transport ends a Read that reads the socket itself (the peer's datagrams come
// another way meanwhile, so that nothing but the close ends its socket read).
func TestCloseWhileReadingSocket(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(c net.Conn, p *Path, tr *Transport)
	}{
		{"stream", func(c net.Conn, _ *Path, _ *Transport) { c.Close() }},
		{"path", func(_ net.Conn, p *Path, _ *Transport) { p.Close() }},
		{"transport", func(_ net.Conn, _ *Path, tr *Transport) { tr.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, pa, c1, c2, div := divertedPair(t)
			res := readAsync(c1, 10)
			waitReaderHolds(t, a)
			div.on.Store(true)
			tc.close(c1, pa, a)
			r := <-res
			require.Error(t, r.err)
			div.on.Store(false)
			if tc.name != "stream" {
				return
			}
			// The close went out as a FIN.
			_, err := c2.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF)
			res = readAsync(c1, 10)
			r = <-res
			require.Error(t, r.err, "a closed stream reads nothing")
		})
	}
}

// Two streams of one path read at once, each exchanging requests and responses: one reads the socket, the other is
// handed its data, and neither misses a wake.
func TestTwoReadersOnePath(t *testing.T) {
	a, b := listen(t, roleConfig()), listen(t, roleConfig())
	pa, pb := connectPair(t, a, b)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 2 {
		c1, c2 := openPair(t, pa, pb)
		wg.Add(2)
		go func() { // echo
			defer wg.Done()
			_, err := io.Copy(c2, c2)
			errs <- err
		}()
		go func() {
			defer wg.Done()
			defer c1.Close()
			msg, got := make([]byte, 200), make([]byte, 200)
			for round := range 300 {
				for i := range msg {
					msg[i] = byte(round * i)
				}
				if _, err := c1.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c1, got); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(msg, got) {
					errs <- errors.New("echo differs")
					return
				}
			}
			errs <- nil
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, ErrStreamClosed) && !errors.Is(err, net.ErrClosed) {
			require.NoError(t, err)
		}
	}
}

// divertedPair connects a (on a plain socket) and b (on a diverter to a) and opens a stream from a to b.
func divertedPair(t *testing.T) (a *Transport, pa *Path, c1, c2 net.Conn, div *diverter) {
	a = listen(t, roleConfig())
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	div = &diverter{PacketConn: pc, from: pc.LocalAddr().(*net.UDPAddr).AddrPort(), q: make(chan []byte, 1024)}
	b, err := NewTransport(div, roleConfig())
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	pa, pb := connectPair(t, a, b)
	c1, c2 = openPair(t, pa, pb)
	go div.run(a)
	return a, pa, c1, c2, div
}

// A stream whose Read reads the Transport's socket still gets data that another goroutine delivers (as datagrams
// arriving on a hard-NAT punch's extra socket or through a relay are): the delivery interrupts the socket read.
func TestDataFromAnotherSocketWhileReadingSocket(t *testing.T) {
	a, _, c1, c2, div := divertedPair(t)
	for round := range 20 {
		res := readAsync(c1, 64)
		waitReaderHolds(t, a)
		div.on.Store(true) // from now on, nothing the peer sends reaches a's socket
		msg := []byte{byte(round), 1, 2, 3}
		_, err := c2.Write(msg)
		require.NoError(t, err)
		r := <-res
		require.NoError(t, r.err)
		require.Equal(t, msg, r.b)
		div.on.Store(false)
	}
}

// diverter is a peer's socket that, when on, hands what it sends straight to a Transport's demultiplexer from a
// goroutine of its own instead of sending it.
type diverter struct {
	net.PacketConn
	from netip.AddrPort
	on   atomic.Bool
	q    chan []byte
}

func (d *diverter) WriteTo(b []byte, to net.Addr) (int, error) {
	if d.on.Load() {
		select {
		case d.q <- bytes.Clone(b):
		default: // dropped, like a full queue
		}
		return len(b), nil
	}
	return d.PacketConn.WriteTo(b, to)
}

func (d *diverter) run(to *Transport) {
	for {
		select {
		case b := <-d.q:
			to.dispatchSealed(b, d.from, nil, nil)
		case <-to.done:
			return
		}
	}
}

// After a Read returns, the socket is read again even when nobody reads: a writer that needs the peer's
// acknowledgements to go on gets them, after the grace, or at once when it waits for them with the role parked for
// longer than the write may take.
func TestWriterGetsAcksAfterReadReturns(t *testing.T) {
	for _, grace := range []time.Duration{time.Millisecond, time.Hour} {
		t.Run(grace.String(), func(t *testing.T) { writerGetsAcksAfterReadReturns(t, grace) })
	}
}

func writerGetsAcksAfterReadReturns(t *testing.T, grace time.Duration) {
	cfg := roleConfig()
	cfg.ReaderGrace = grace
	a, b := listen(t, cfg), listen(t, cfg)
	pa, pb := connectPair(t, a, b)
	c1, c2 := openPair(t, pa, pb)
	res := readAsync(c1, 10)
	waitReaderHolds(t, a)
	_, err := c2.Write([]byte("go"))
	require.NoError(t, err)
	require.NoError(t, (<-res).err)

	// c1 no longer reads; it writes more than the windows let it send without acknowledgements.
	data := randomBytes(t, 8<<20)
	require.NoError(t, c1.SetWriteDeadline(time.Now().Add(time.Minute)))
	done := make(chan error, 1)
	go func() {
		_, err := c1.Write(data)
		if err == nil {
			err = c1.(interface{ CloseWrite() error }).CloseWrite()
		}
		done <- err
	}()
	got, err := io.ReadAll(c2)
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.True(t, bytes.Equal(data, got))
}

// Two streams of one path move data both ways at once: four Reads on two Transports take the sockets from each other
// and from the background goroutines, and every byte arrives.
func TestBulkBothWaysOnTwoStreams(t *testing.T) {
	a, b := listen(t, roleConfig()), listen(t, roleConfig())
	pa, pb := connectPair(t, a, b)
	s1, s2 := openPair(t, pa, pb)
	s3, s4 := openPair(t, pb, pa)
	done := make(chan struct{})
	go func() {
		defer close(done)
		exchange(t, s1, s2, 4<<20) // a failure marks the test failed and ends this goroutine
	}()
	exchange(t, s3, s4, 4<<20)
	<-done
}
