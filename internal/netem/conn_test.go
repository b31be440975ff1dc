package netem

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func listenLoopback(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	return pc
}

func TestLinkDeliversInOrderAfterDelay(t *testing.T) {
	t.Parallel()
	type got struct {
		seq uint32
		at  time.Time
	}
	var (
		mu   sync.Mutex
		recv []got
		all  = make(chan struct{})
	)
	const n = 500
	l := NewLink(Impairment{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}, 1, func(p Packet) {
		mu.Lock()
		defer mu.Unlock()
		recv = append(recv, got{binary.BigEndian.Uint32(p.Data), time.Now()})
		if len(recv) == n {
			close(all)
		}
	})
	defer l.Close()
	sent := make([]time.Time, n)
	buf := make([]byte, 4)
	for i := range n {
		binary.BigEndian.PutUint32(buf, uint32(i))
		sent[i] = time.Now()
		l.Send(Packet{Data: buf}) // buf is reused: the link must have copied it
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of %d packets delivered", len(recv), n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, g := range recv {
		require.Equal(t, uint32(i), g.seq, "packet carried by delivery %d", i)
		require.GreaterOrEqual(t, g.at.Sub(sent[i]), 20*time.Millisecond, "delay of packet %d", i)
	}
	st := l.Stats()
	require.Equal(t, int64(n), st.Offered, "stats %+v", st)
	require.Equal(t, int64(n), st.Delivered, "stats %+v", st)
}

func TestLinkCloseDiscardsPending(t *testing.T) {
	t.Parallel()
	delivered := make(chan Packet, 1)
	l := NewLink(Impairment{Delay: time.Hour}, 1, func(p Packet) { delivered <- p })
	l.Send(Packet{Data: []byte("x")})
	l.Close()
	l.Send(Packet{Data: []byte("y")}) // after Close: ignored, no panic
	select {
	case p := <-delivered:
		t.Fatalf("delivered %q after Close", p.Data)
	default:
	}
}

func TestConnImpairsBothDirections(t *testing.T) {
	t.Parallel()
	a := Wrap(listenLoopback(t), Config{Out: Impairment{Loss: 1}})
	defer a.Close()
	b := Wrap(listenLoopback(t), Config{})
	defer b.Close()

	// a's outbound loses everything.
	_, err := a.WriteTo([]byte("lost"), b.LocalAddr())
	require.NoError(t, err)
	// b -> a arrives: only a's outbound is impaired.
	_, err = b.WriteTo([]byte("ping"), a.LocalAddr())
	require.NoError(t, err)
	buf := make([]byte, 64)
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := a.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf[:n]))
	require.Equal(t, b.LocalAddr().String(), from.String(), "sender of the ping")
	b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	n, _, err = b.ReadFrom(buf)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "b read %q; want a deadline error since a's outbound loses everything", buf[:n])
	st := a.OutStats()
	require.Equal(t, int64(1), st.Offered, "a's outbound stats %+v", st)
	require.Equal(t, int64(1), st.Lost, "a's outbound stats %+v", st)
}

func TestConnDelayedRead(t *testing.T) {
	t.Parallel()
	a := Wrap(listenLoopback(t), Config{})
	defer a.Close()
	b := Wrap(listenLoopback(t), Config{In: Impairment{Delay: 30 * time.Millisecond}})
	defer b.Close()
	start := time.Now()
	_, err := a.WriteTo([]byte("hello"), b.LocalAddr())
	require.NoError(t, err)
	buf := make([]byte, 64)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := b.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf[:n]))
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond, "time to the read, want the inbound delay")
}

func TestConnNATFilter(t *testing.T) {
	t.Parallel()
	for _, f := range []Filtering{FilterAddress, FilterAddressPort} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			t.Parallel()
			c := Wrap(listenLoopback(t), Config{Filter: f})
			defer c.Close()
			peer, stranger := listenLoopback(t), listenLoopback(t)
			defer peer.Close()
			defer stranger.Close()
			buf := make([]byte, 64)

			// Nobody has been sent to: the peer is filtered like the stranger.
			peer.WriteTo([]byte("early"), c.LocalAddr())
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, _, err := c.ReadFrom(buf)
			require.Error(t, err, "read %q before punching", buf[:n])
			// Punch towards the peer; now the peer gets in, the stranger (another port) only with FilterAddress.
			c.WriteTo([]byte("punch"), peer.LocalAddr())
			time.Sleep(50 * time.Millisecond) // the punch leaves through the link's goroutine
			stranger.WriteTo([]byte("stranger"), c.LocalAddr())
			peer.WriteTo([]byte("peer"), c.LocalAddr())
			var got []string
			for {
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					break
				}
				got = append(got, string(buf[:n]))
			}
			want := []string{"peer"}
			if f == FilterAddress {
				want = []string{"stranger", "peer"} // same IP, 127.0.0.1
			}
			require.Equal(t, want, got)
			require.Equal(t, int64(3-len(want)), c.Filtered(), "Filtered()")
		})
	}
}

// A ReadFrom blocked with nothing to read is released by Close and by a deadline set while it waits.
func TestConnBlockedReadReleased(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		release func(c *Conn)
		want    error
	}{
		{"close", func(c *Conn) { c.Close() }, net.ErrClosed},
		{"deadline", func(c *Conn) { c.SetReadDeadline(time.Now()) }, os.ErrDeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Wrap(listenLoopback(t), Config{})
			defer c.Close()
			errc := make(chan error, 1)
			go func() {
				_, _, err := c.ReadFrom(make([]byte, 10))
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			tc.release(c)
			select {
			case err := <-errc:
				require.ErrorIs(t, err, tc.want, "ReadFrom")
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFrom still blocked")
			}
		})
	}
	c := Wrap(listenLoopback(t), Config{})
	c.Close()
	_, err := c.WriteTo([]byte("x"), c.LocalAddr())
	require.ErrorIs(t, err, net.ErrClosed, "WriteTo after Close")
}

func TestConnPassesSocketOptions(t *testing.T) {
	t.Parallel()
	c := Wrap(listenLoopback(t), Config{})
	defer c.Close()
	require.NoError(t, c.SetReadBuffer(1<<20))
	require.NoError(t, c.SetWriteBuffer(1<<20))
	var _ syscall.Conn = c
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	var rcvbuf int
	var sockErr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		rcvbuf, sockErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}))
	require.NoError(t, sockErr)
	require.Positive(t, rcvbuf, "SO_RCVBUF through the wrapper")
}

// A bottleneck through real sockets: the receiver counts what arrives; the rate is computed from counts and the
// link's own accounting, so a slow CI machine does not make it flaky.
func TestConnBottleneckDropsAtQueue(t *testing.T) {
	t.Parallel()
	const (
		rate  = 1e6
		queue = 20_000
		size  = 1000
		n     = 400
	)
	a := Wrap(listenLoopback(t), Config{Out: Impairment{Rate: rate, QueueBytes: queue}})
	defer a.Close()
	b := listenLoopback(t)
	defer b.Close()
	pkt := make([]byte, size)
	for range n { // a burst far faster than 1 MB/s
		_, err := a.WriteTo(pkt, b.LocalAddr())
		require.NoError(t, err)
	}
	backlog := a.Backlog()
	require.Positive(t, backlog, "Backlog() right after the burst")
	require.LessOrEqual(t, backlog, queue, "Backlog() right after the burst")
	st := a.OutStats()
	require.Equal(t, int64(n), st.Delivered+st.QueueDrops, "stats %+v: want every packet delivered or dropped at the queue", st)
	require.NotZero(t, st.QueueDrops, "stats %+v: want some dropped at the queue", st)
	// What got through is about one queue's worth plus what drained while the burst was being written.
	require.GreaterOrEqual(t, st.Delivered, int64(queue/size), "packets of %d that passed a %d B queue", n, queue)
	require.LessOrEqual(t, st.Delivered, int64(n/2), "packets of %d that passed a %d B queue", n, queue)
	got := 0
	buf := make([]byte, 2048)
	for int64(got) < st.Delivered {
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := b.ReadFrom(buf)
		require.NoError(t, err, "received %d of %d delivered packets", got, st.Delivered)
		got++
	}
}

func ExampleWrap() {
	inner, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	// A 20 Mbit/s uplink with a 64 KB queue, 20 ms each way, and 1% loss.
	pc := Wrap(inner, Config{
		Out:  Impairment{Rate: 2.5e6, QueueBytes: 64 << 10, Delay: 20 * time.Millisecond, Loss: 0.01},
		In:   Impairment{Delay: 20 * time.Millisecond},
		Seed: 1,
	})
	defer pc.Close()
	pc.WriteTo([]byte("hello"), pc.LocalAddr()) // to ourselves: out, then back in
	buf := make([]byte, 100)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	fmt.Println(string(buf[:n]), err)
	// Output: hello <nil>
}
