package netem

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

func listenLoopback(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
		if g.seq != uint32(i) {
			t.Fatalf("delivery %d carried packet %d", i, g.seq)
		}
		if d := g.at.Sub(sent[i]); d < 20*time.Millisecond {
			t.Fatalf("packet %d delivered after %v, want at least 20ms", i, d)
		}
	}
	if st := l.Stats(); st.Offered != n || st.Delivered != n {
		t.Fatalf("stats %+v, want %d offered and delivered", st, n)
	}
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
	if _, err := a.WriteTo([]byte("lost"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	// b -> a arrives: only a's outbound is impaired.
	if _, err := b.WriteTo([]byte("ping"), a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := a.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" || from.String() != b.LocalAddr().String() {
		t.Fatalf("a read %q from %v, %v; want ping from %v", buf[:n], from, err, b.LocalAddr())
	}
	b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := b.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("b read %q, %v; want a deadline error since a's outbound loses everything", buf[:n], err)
	}
	if st := a.OutStats(); st.Offered != 1 || st.Lost != 1 {
		t.Fatalf("a's outbound stats %+v, want 1 offered, 1 lost", st)
	}
}

func TestConnDelayedRead(t *testing.T) {
	t.Parallel()
	a := Wrap(listenLoopback(t), Config{})
	defer a.Close()
	b := Wrap(listenLoopback(t), Config{In: Impairment{Delay: 30 * time.Millisecond}})
	defer b.Close()
	start := time.Now()
	if _, err := a.WriteTo([]byte("hello"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := b.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], []byte("hello")) {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("read after %v, want the 30 ms inbound delay", d)
	}
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
			if n, _, err := c.ReadFrom(buf); err == nil {
				t.Fatalf("read %q before punching", buf[:n])
			}
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
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("read %q, want %q", got, want)
			}
			if wantFiltered := int64(3 - len(want)); c.Filtered() != wantFiltered {
				t.Fatalf("Filtered() = %d, want %d", c.Filtered(), wantFiltered)
			}
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
				if !errors.Is(err, tc.want) {
					t.Fatalf("ReadFrom = %v, want %v", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFrom still blocked")
			}
		})
	}
	c := Wrap(listenLoopback(t), Config{})
	c.Close()
	if _, err := c.WriteTo([]byte("x"), c.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close = %v, want net.ErrClosed", err)
	}
}

func TestConnPassesSocketOptions(t *testing.T) {
	t.Parallel()
	c := Wrap(listenLoopback(t), Config{})
	defer c.Close()
	if err := c.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	var _ syscall.Conn = c
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var rcvbuf int
	var sockErr error
	if err := rc.Control(func(fd uintptr) {
		rcvbuf, sockErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}); err != nil || sockErr != nil {
		t.Fatal(err, sockErr)
	}
	if rcvbuf <= 0 {
		t.Fatalf("SO_RCVBUF = %d through the wrapper", rcvbuf)
	}
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
		if _, err := a.WriteTo(pkt, b.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if b := a.Backlog(); b <= 0 || b > queue {
		t.Fatalf("Backlog() = %d right after the burst, want in (0, %d]", b, queue)
	}
	st := a.OutStats()
	if st.Delivered+st.QueueDrops != n || st.QueueDrops == 0 {
		t.Fatalf("stats %+v: want every packet delivered or dropped at the queue, some dropped", st)
	}
	// What got through is about one queue's worth plus what drained while the burst was being written.
	if st.Delivered < queue/size || st.Delivered > n/2 {
		t.Fatalf("%d of %d packets passed a %d B queue", st.Delivered, n, queue)
	}
	got := 0
	buf := make([]byte, 2048)
	for int64(got) < st.Delivered {
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := b.ReadFrom(buf); err != nil {
			t.Fatalf("received %d of %d delivered packets: %v", got, st.Delivered, err)
		}
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
