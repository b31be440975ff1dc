package utp

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/netem"
	"github.com/stretchr/testify/require"
)

// fastConfig keeps every timer short so the tests take seconds.
func fastConfig() Config {
	return Config{
		KeepaliveInterval: 200 * time.Millisecond,
		DeadPathTimeout:   2 * time.Second,
		PunchInterval:     20 * time.Millisecond,
		CloseTimeout:      2 * time.Second,
	}
}

func newKey(t testing.TB) []byte {
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return key
}

func listen(t testing.TB, cfg Config) *Transport {
	tr, err := Listen("udp4", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

// wrapped returns a Transport on a loopback socket wrapped with netem (e.g. a NAT filter).
func wrapped(t testing.TB, cfg Config, ncfg netem.Config) (*Transport, *netem.Conn) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	nc := netem.Wrap(pc, ncfg)
	tr, err := NewTransport(nc, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr, nc
}

// connectPair connects a (the dialler) and b with a fresh key, concurrently, as two peers would.
func connectPair(t testing.TB, a, b *Transport) (pa, pb *Path) {
	t.Helper()
	key := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var errB error
	wg.Add(1)
	go func() {
		defer wg.Done()
		pb, errB = b.Connect(ctx, Peer{Key: key, Candidates: a.HostCandidates(), Dialer: false})
	}()
	pa, errA := a.Connect(ctx, Peer{Key: key, Candidates: b.HostCandidates(), Dialer: true})
	wg.Wait()
	require.NoError(t, errA)
	require.NoError(t, errB)
	t.Cleanup(func() { pa.Close(); pb.Close() })
	return pa, pb
}

// openPair opens a stream from opener and accepts it on acceptor.
func openPair(t testing.TB, opener, acceptor *Path) (net.Conn, net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var accepted net.Conn
	var errAcc error
	wg.Add(1)
	go func() {
		defer wg.Done()
		accepted, errAcc = acceptor.AcceptStream(ctx)
	}()
	opened, err := opener.OpenStream(ctx)
	wg.Wait()
	require.NoError(t, err)
	require.NoError(t, errAcc)
	t.Cleanup(func() { opened.Close(); accepted.Close() })
	return opened, accepted
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestConnectAndStreamsBothWays(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	require.Equal(t, b.LocalAddr().AddrPort(), pa.RemoteAddr())
	require.Equal(t, a.LocalAddr().AddrPort(), pb.RemoteAddr())
	require.True(t, pa.RTT() > 0, "RTT %v", pa.RTT())
	local, remote := pa.Pair()
	require.Equal(t, CandidateHost, local.Kind)
	require.Equal(t, a.LocalAddr().AddrPort(), local.Addr)
	require.Equal(t, Candidate{Kind: CandidateHost, Addr: b.LocalAddr().AddrPort()}, remote)

	// Streams opened by the dialler, by the other side, and several at once from both.
	for i := range 6 {
		opener, acceptor := pa, pb
		if i%2 == 1 {
			opener, acceptor = pb, pa
		}
		c1, c2 := openPair(t, opener, acceptor)
		t.Run(fmt.Sprintf("stream %d", i), func(t *testing.T) {
			t.Parallel()
			exchange(t, c1, c2, 300<<10+i)
		})
	}
}

// exchange sends n random bytes each way at once, half-closes, checks what arrived and closes. Assertions stay on
// the calling goroutine; the helpers only report errors.
func exchange(t testing.TB, c1, c2 net.Conn, n int) {
	t.Helper()
	d1, d2 := randomBytes(t, n), randomBytes(t, n)
	errs := make(chan error, 2)
	send := func(c net.Conn, d []byte) {
		if _, err := c.Write(d); err != nil {
			errs <- err
			return
		}
		errs <- c.(interface{ CloseWrite() error }).CloseWrite()
	}
	go send(c1, d1)
	go send(c2, d2)
	type result struct {
		b   []byte
		err error
	}
	r1 := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(c1)
		r1 <- result{b, err}
	}()
	got2, err := io.ReadAll(c2)
	require.NoError(t, err, "reading c2")
	got1 := <-r1
	require.NoError(t, got1.err, "reading c1")
	require.NoError(t, <-errs, "writing")
	require.NoError(t, <-errs, "writing")
	require.True(t, bytes.Equal(d1, got2), "c1 -> c2: got %d bytes, want %d identical", len(got2), n)
	require.True(t, bytes.Equal(d2, got1.b), "c2 -> c1: got %d bytes, want %d identical", len(got1.b), n)
	require.NoError(t, c1.Close())
	require.NoError(t, c2.Close())
}

func TestCloseDeliversEverything(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	for _, tc := range []struct {
		name             string
		writer, receiver *Path
	}{{"dialler writes", pa, pb}, {"acceptor writes", pb, pa}} {
		t.Run(tc.name, func(t *testing.T) {
			w, r := openPair(t, tc.writer, tc.receiver)
			data := randomBytes(t, 3<<20) // more than the window: Close must wait for the reader
			go func() {
				w.Write(data)
				w.Close()
			}()
			got, err := io.ReadAll(r)
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, got), "got %d bytes, want %d identical", len(got), len(data))
			_, err = w.Write([]byte("x"))
			require.ErrorIs(t, err, net.ErrClosed)
		})
	}
}

// Closing the path right after closing a stream still delivers everything the stream was given: Path.Close waits for
// closed streams, which deliver in the background.
func TestPathCloseAfterStreamClose(t *testing.T) {
	cfg := fastConfig()
	cfg.StreamWindow = 256 << 10 // the reader holds the writer back: most of the data is still to send at Close
	a, b := listen(t, cfg), listen(t, cfg)
	pa, pb := connectPair(t, a, b)
	w, r := openPair(t, pa, pb)
	data := randomBytes(t, 2<<20)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r) // ends with the path's error once everything was read
		got <- b
	}()
	_, err := w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, pa.Close())
	rb := <-got
	require.True(t, bytes.Equal(data, rb), "got %d bytes, want %d identical", len(rb), len(data))
}

// The socket gets the requested buffers (as far as the kernel's maximum allows) and reports them.
func TestSocketBuffers(t *testing.T) {
	tr := listen(t, Config{})
	read, write := tr.BufferSizes()
	require.True(t, read > 0, "no read buffer size reported: %d", read)
	require.True(t, write > 0, "no write buffer size reported: %d", write)
	if runtime.GOOS == "linux" {
		rmax, err1 := readSysctl("/proc/sys/net/core/rmem_max")
		wmax, err2 := readSysctl("/proc/sys/net/core/wmem_max")
		if err1 == nil && err2 == nil {
			require.Equal(t, 2*min(4<<20, rmax), read, "SO_RCVBUF")
			require.Equal(t, 2*min(4<<20, wmax), write, "SO_SNDBUF")
		}
	}
}

func readSysctl(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// IPv6 loopback works the same way.
func TestIPv6Loopback(t *testing.T) {
	a, err := Listen("udp6", "[::1]:0", fastConfig())
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer a.Close()
	b, err := Listen("udp6", "[::1]:0", fastConfig())
	require.NoError(t, err)
	defer b.Close()
	pa, pb := connectPair(t, a, b)
	c1, c2 := openPair(t, pb, pa)
	exchange(t, c1, c2, 100<<10)
}

// Many streams opened at once from both sides all connect and carry their own bytes.
func TestManyConcurrentStreams(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	const perSide = 20
	type pair struct{ c1, c2 net.Conn }
	pairs := make(chan pair, 2*perSide)
	errs := make(chan error, 4*perSide)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, side := range [][2]*Path{{pa, pb}, {pb, pa}} {
		opener, acceptor := side[0], side[1]
		for range perSide {
			go func() {
				c, err := opener.OpenStream(ctx)
				if err != nil {
					errs <- err
					return
				}
				// Which accepted stream is ours is told by its first bytes.
				_, err = c.Write([]byte(fmt.Sprintf("%p", c)))
				errs <- err
				pairs <- pair{c1: c}
			}()
			go func() {
				c, err := acceptor.AcceptStream(ctx)
				errs <- err
				if err == nil {
					pairs <- pair{c2: c}
				}
			}()
		}
	}
	opened := map[string]net.Conn{}
	var accepted []net.Conn
	for range 4 * perSide {
		require.NoError(t, <-errs)
	}
	for range 4 * perSide {
		p := <-pairs
		if p.c1 != nil {
			opened[fmt.Sprintf("%p", p.c1)] = p.c1
		} else {
			accepted = append(accepted, p.c2)
		}
	}
	require.Len(t, opened, 2*perSide, "opened streams")
	require.Len(t, accepted, 2*perSide, "accepted streams")
	for _, c2 := range accepted {
		c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := c2.Read(buf)
		require.NoError(t, err)
		c1 := opened[string(buf[:n])]
		require.True(t, c1 != nil, "accepted stream starts with %q, which no opener wrote", buf[:n])
		delete(opened, string(buf[:n]))
		c2.SetReadDeadline(time.Time{})
		exchange(t, c1, c2, 32<<10)
	}
}

// The path's RTT is measured, and the pair reported, across an emulated 2 x 40 ms link.
func TestRTTMeasured(t *testing.T) {
	delay := netem.Config{Out: netem.Impairment{Delay: 40 * time.Millisecond}}
	a, _ := wrapped(t, fastConfig(), delay)
	b, _ := wrapped(t, fastConfig(), delay)
	pa, pb := connectPair(t, a, b)
	for _, p := range []*Path{pa, pb} {
		rtt := p.RTT()
		require.GreaterOrEqual(t, rtt, 80*time.Millisecond, "RTT across 2 x 40 ms")
		require.Less(t, rtt, 200*time.Millisecond, "RTT across 2 x 40 ms")
	}
	c1, c2 := openPair(t, pb, pa)
	exchange(t, c1, c2, 64<<10)
}

// Closing the Transport ends a Connect in progress at once.
func TestCloseDuringConnect(t *testing.T) {
	a := listen(t, fastConfig())
	errc := make(chan error, 1)
	key := newKey(t) // made here: newKey asserts, which only the test goroutine may
	go func() {
		_, err := a.Connect(context.Background(), Peer{Key: key, Candidates: []Candidate{{Kind: CandidateHost, Addr: netip.MustParseAddrPort("127.0.0.1:9")}}})
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, a.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrPunchFailed)
		require.ErrorIs(t, err, ErrTransportClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("Connect still running after Close")
	}
	_, err := a.Connect(context.Background(), Peer{Key: newKey(t), Candidates: []Candidate{{Kind: CandidateHost, Addr: netip.MustParseAddrPort("127.0.0.1:9")}}})
	require.ErrorIs(t, err, ErrTransportClosed)
}

// Closing a Transport fails its streams and paths with ErrTransportClosed, and the peer learns at once.
func TestTransportCloseEndsStreams(t *testing.T) {
	cfg := fastConfig()
	cfg.DeadPathTimeout = time.Minute
	a, b := listen(t, cfg), listen(t, cfg)
	pa, pb := connectPair(t, a, b)
	c1, c2 := openPair(t, pa, pb)
	readErr := make(chan error, 1)
	go func() {
		_, err := c1.Read(make([]byte, 1))
		readErr <- err
	}()
	require.NoError(t, a.Close())
	require.ErrorIs(t, <-readErr, ErrTransportClosed)
	_, err := c1.Write([]byte("x"))
	require.ErrorIs(t, err, ErrTransportClosed)
	_, err = pa.AcceptStream(context.Background())
	require.ErrorIs(t, err, ErrTransportClosed)
	// The peer was told (bye), not left to time out.
	_, err = c2.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrPathClosed)
	require.NoError(t, a.Close(), "second Close")
}

// Every congestion controller Config.CongestionControl names carries a transfer through a lossy bottleneck; an
// unknown name is refused when the Transport is made.
func TestCongestionControlChoices(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"bbr", "cubic", "ledbat"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cc := fmt.Sprintf("%T", controllers[name]())
			require.True(t, strings.Contains(strings.ToLower(cc), name), "%q makes a %s", name, cc)
			cfg := fastConfig()
			cfg.CongestionControl = name
			up := netem.Impairment{Rate: 4e6, QueueBytes: 64 << 10, Delay: 10 * time.Millisecond, Loss: 0.005}
			p := newImpairedPair(t, cfg, &netem.Config{Out: up, In: netem.Impairment{Delay: 10 * time.Millisecond}, Seed: 3}, nil)
			checkTransfer(t, p, 1<<20, nil)
		})
	}
	_, err := Listen("udp4", "127.0.0.1:0", Config{CongestionControl: "reno"})
	require.Error(t, err, "unknown congestion control")
	require.ErrorContains(t, err, `"reno"`, "unknown congestion control")
}
