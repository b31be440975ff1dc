//go:build linux

package nslab_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/nslab"
)

// listen opens a UDP socket inside h's namespace; the lab closes nothing for us, so the test does.
func listen(t *testing.T, h *nslab.Host, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	require.NoError(t, h.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	}), "listen %s in %s", addr, h.NS)
	t.Cleanup(func() { c.Close() })
	return c
}

func local(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

var probeSeq int

// send sends a fresh probe from c to dst, retrying while ARP settles, and returns the source address
// at which receiver (listening at dst) saw it, or !ok when receiver got nothing within the wait.
func send(t *testing.T, c *net.UDPConn, dst netip.AddrPort, receiver *net.UDPConn, wait time.Duration) (from netip.AddrPort, ok bool) {
	t.Helper()
	probeSeq++
	msg := []byte(fmt.Sprintf("probe %d %s", probeSeq, t.Name()))
	deadline := time.Now().Add(wait)
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		_, err := c.WriteToUDPAddrPort(msg, dst)
		require.NoError(t, err, "send to %v", dst)
		_ = receiver.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		for {
			n, src, err := receiver.ReadFromUDPAddrPort(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				require.NoError(t, err, "receive at %v", local(receiver))
			}
			if bytes.Equal(buf[:n], msg) {
				return src, true
			}
		}
	}
	return netip.AddrPort{}, false
}

const (
	reachable   = 3 * time.Second // generous: the first packet waits for ARP on two links
	unreachable = 600 * time.Millisecond
)

// mustReach asserts a probe from c to dst arrives at receiver and returns its observed source.
func mustReach(t *testing.T, c *net.UDPConn, dst netip.AddrPort, receiver *net.UDPConn) netip.AddrPort {
	t.Helper()
	from, ok := send(t, c, dst, receiver, reachable)
	require.True(t, ok, "probe from %v to %v never arrived", local(c), dst)
	return from
}

// mustNotReach asserts a probe from c to dst does not arrive at receiver.
func mustNotReach(t *testing.T, c *net.UDPConn, dst netip.AddrPort, receiver *net.UDPConn) {
	t.Helper()
	from, ok := send(t, c, dst, receiver, unreachable)
	require.False(t, ok, "probe from %v to %v arrived (seen from %v), want it filtered", local(c), dst, from)
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// TestNATTypes checks each router's mapping and filtering against RFC 4787's definitions, with UDP probes
// between a peer behind it and sockets on two public addresses.
func TestNATTypes(t *testing.T) {
	lab := nslab.Start(t, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "prc"}}},
		{NAT: nslab.FullCone, Peers: []nslab.PeerConfig{{Name: "fc"}}},
		{NAT: nslab.RestrictedCone, Peers: []nslab.PeerConfig{{Name: "rc"}}},
		{NAT: nslab.Symmetric, Peers: []nslab.PeerConfig{{Name: "sym"}}},
	}})
	pub := lab.Public
	// s1 and s2 share an address, s3 is another host.
	s1 := listen(t, pub, "203.0.113.1:4001")
	s2 := listen(t, pub, "203.0.113.1:4002")
	s3 := listen(t, pub, "203.0.113.2:4003")

	for i, tc := range []struct {
		peer          string
		endpointIndep bool // same public port towards every destination
		sameAddrIn    bool // a port of a contacted address that was not contacted may send in
		anyoneIn      bool // any host may send in once mapped
	}{
		{peer: "prc", endpointIndep: true},
		{peer: "fc", endpointIndep: true, sameAddrIn: true, anyoneIn: true},
		{peer: "rc", endpointIndep: true, sameAddrIn: true},
		{peer: "sym"},
	} {
		r := lab.Routers[i]
		t.Run(r.NAT.String(), func(t *testing.T) {
			p := listen(t, lab.Peer(tc.peer), "0.0.0.0:40000")
			// The peer has sent to s1 only.
			m1 := mustReach(t, p, local(s1), s1)
			require.Equal(t, r.WAN, m1.Addr(), "address s1 saw (%v), want the router's", m1)
			// Replies from a contacted endpoint always come in.
			require.Equal(t, local(s1), mustReach(t, s1, m1, p), "source of the reply the peer saw")
			// s2: same address as s1, another port.
			if tc.sameAddrIn {
				mustReach(t, s2, m1, p)
			} else {
				mustNotReach(t, s2, m1, p)
			}
			// s3: a host never contacted.
			if tc.anyoneIn {
				mustReach(t, s3, m1, p)
			} else {
				mustNotReach(t, s3, m1, p)
			}
			// The mapping towards s3 from the same socket.
			m3 := mustReach(t, p, local(s3), s3)
			if tc.endpointIndep {
				require.Equal(t, uint16(40000), m1.Port(), "mapping to s1")
				require.Equal(t, m1, m3, "mapping to s3, want the one to s1")
			} else {
				require.NotEqual(t, m1.Port(), m3.Port(), "symmetric NAT used one port towards both s1 and s3")
			}
			mustReach(t, s3, m3, p)
			// An unmapped port of the router never lets anything in.
			mustNotReach(t, s1, ap(r.WAN, 40999), p)
		})
	}
}

// TestUnsolicitedDoesNotStealPort checks the router drops unsolicited packets to its own address without
// remembering them: a peer whose punch packet arrives before the other side has sent anything must not
// push that side's mapping to another port (the conntrack race that breaks cone-to-cone punching).
func TestUnsolicitedDoesNotStealPort(t *testing.T) {
	lab := nslab.Start(t, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "a"}}},
	}})
	r := lab.Routers[0]
	s := listen(t, lab.Public, "203.0.113.1:5000")
	p := listen(t, lab.Peer("a"), "0.0.0.0:41000")
	for range 3 {
		mustNotReach(t, s, ap(r.WAN, 41000), p)
	}
	require.Equal(t, ap(r.WAN, 41000), mustReach(t, p, local(s), s), "the mapping after unsolicited packets")
	// Now the hole is open in both directions.
	mustReach(t, s, ap(r.WAN, 41000), p)
}

// TestHairpin checks two peers behind one router reach each other through the router's public address
// only when hairpinning is on, and directly on their LAN either way.
func TestHairpin(t *testing.T) {
	lab := nslab.Start(t, nslab.Config{Routers: []nslab.RouterConfig{
		// Both LANs on 192.168.1.0/24, like two home networks: the routers keep them apart.
		{NAT: nslab.PortRestrictedCone, Hairpin: true, LAN: netip.MustParsePrefix("192.168.1.0/24"), Peers: []nslab.PeerConfig{{Name: "h1"}, {Name: "h2"}}},
		{NAT: nslab.PortRestrictedCone, LAN: netip.MustParsePrefix("192.168.1.0/24"), Peers: []nslab.PeerConfig{{Name: "n1"}, {Name: "n2"}}},
	}})
	s := listen(t, lab.Public, "203.0.113.1:6000")
	for _, tc := range []struct {
		a, b    string
		hairpin bool
	}{{"h1", "h2", true}, {"n1", "n2", false}} {
		t.Run(fmt.Sprintf("hairpin=%v", tc.hairpin), func(t *testing.T) {
			a := listen(t, lab.Peer(tc.a), "0.0.0.0:42001")
			b := listen(t, lab.Peer(tc.b), "0.0.0.0:42002")
			// Both learn their public endpoints, as through STUN.
			ma := mustReach(t, a, local(s), s)
			mb := mustReach(t, b, local(s), s)
			if tc.hairpin {
				require.Equal(t, mb, mustReach(t, b, ma, a), "source of the hairpinned packet, want b's public endpoint")
				mustReach(t, a, mb, b)
			} else {
				mustNotReach(t, b, ma, a)
				mustNotReach(t, a, mb, b)
			}
			// The LAN path works regardless.
			bLAN := ap(lab.Peer(tc.b).Addr, 42002)
			require.Equal(t, ap(lab.Peer(tc.a).Addr, 42001), mustReach(t, a, bLAN, b), "source of the LAN packet, want a's LAN address")
		})
	}
}

// TestImpairment measures what the forwarder does: the round-trip time through a link delaying each
// direction, the fraction of frames a lossy link drops, and reordering.
func TestImpairment(t *testing.T) {
	const delay = 40 * time.Millisecond
	lab := nslab.Start(t, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{
			{Name: "slow", Up: &nslab.Impairment{Delay: delay}, Down: &nslab.Impairment{Delay: delay}},
			{Name: "lossy", Up: &nslab.Impairment{Loss: 0.1}, Seed: 7},
			{Name: "reorder", Up: &nslab.Impairment{Delay: 5 * time.Millisecond, Reorder: 0.25, ReorderDelay: 5 * time.Millisecond}},
		}},
	}})
	echo := listen(t, lab.Public, "203.0.113.1:7000")
	go func() {
		buf := make([]byte, 2048)
		for {
			n, src, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteToUDPAddrPort(buf[:n], src)
		}
	}()

	t.Run("delay", func(t *testing.T) {
		p := listen(t, lab.Peer("slow"), "0.0.0.0:0")
		mustReach(t, p, local(echo), p) // warm up ARP and the mapping
		var best time.Duration
		for i := range 10 {
			start := time.Now()
			_, ok := send(t, p, local(echo), p, 3*time.Second)
			require.True(t, ok, "echo %d lost on a loss-free link", i)
			if rtt := time.Since(start); best == 0 || rtt < best {
				best = rtt
			}
		}
		t.Logf("best RTT through a %v-each-way link: %v", delay, best)
		require.GreaterOrEqual(t, best, 2*delay, "best RTT")
		require.LessOrEqual(t, best, 2*delay+150*time.Millisecond, "best RTT, far above the configured %v", 2*delay)
	})

	t.Run("loss", func(t *testing.T) {
		h := lab.Peer("lossy")
		p := listen(t, h, "0.0.0.0:0")
		sink := listen(t, lab.Public, "203.0.113.1:7001")
		_ = sink.SetReadBuffer(1 << 20)
		mustReach(t, p, local(sink), sink) // warm up: ARP retries must not skew the count
		before := h.Link.Stats().ToRouter.Link
		const n = 2000
		received := make(chan int)
		go func() {
			got, buf := 0, make([]byte, 64)
			for {
				_ = sink.SetReadDeadline(time.Now().Add(time.Second))
				m, _, err := sink.ReadFromUDPAddrPort(buf)
				if err != nil {
					received <- got
					return
				}
				if strings.HasPrefix(string(buf[:m]), "count ") {
					got++
				}
			}
		}()
		for i := range n {
			_, err := p.WriteToUDPAddrPort([]byte(fmt.Sprintf("count %d", i)), local(sink))
			require.NoError(t, err)
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // stay under the socket buffers
			}
		}
		got := <-received
		after := h.Link.Stats().ToRouter.Link
		lost := uint64(after.Lost - before.Lost)
		t.Logf("sent %d, received %d, link counted %d lost of %d frames (%+v)", n, got, lost, after.Offered-before.Offered, after)
		// 10% of 2000: mean 200, standard deviation 13.4; 140..260 is beyond 4 sigma.
		require.InDelta(t, 200, n-got, 60, "probes lost of %d, want about 10%%", n)
		// Every probe the link did not drop must arrive (the sink's buffer is large; allow a few for ARP).
		missed := int64(n-got) - int64(lost)
		require.GreaterOrEqual(t, missed, int64(0), "receiver missed %d probes but the link counted %d lost", n-got, lost)
		require.LessOrEqual(t, missed, int64(5), "receiver missed %d probes but the link counted %d lost", n-got, lost)
	})

	t.Run("reorder", func(t *testing.T) {
		p := listen(t, lab.Peer("reorder"), "0.0.0.0:0")
		sink := listen(t, lab.Public, "203.0.113.1:7002")
		mustReach(t, p, local(sink), sink)
		const n = 200
		for i := range n {
			_, err := p.WriteToUDPAddrPort([]byte{byte(i)}, local(sink))
			require.NoError(t, err)
			time.Sleep(500 * time.Microsecond)
		}
		buf := make([]byte, 64)
		got, inversions, last := 0, 0, -1
		for got < n {
			_ = sink.SetReadDeadline(time.Now().Add(time.Second))
			m, _, err := sink.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if m != 1 {
				continue
			}
			got++
			if int(buf[0]) < last {
				inversions++
			}
			last = int(buf[0])
		}
		t.Logf("%d of %d frames arrived, %d out of order", got, n, inversions)
		require.Equal(t, n, got, "frames received on a loss-free link")
		require.NotZero(t, inversions, "holding back a quarter of the frames by 5 ms on 0.5 ms spacing reordered nothing")
	})
}

// TestImpairedLinkCarriesTCP sends bulk TCP both ways through the forwarder: checksums the kernel left to
// offload must be completed, and the frames must be single segments, so loss hits segments as on a real
// link rather than 64 KiB super-frames.
func TestImpairedLinkCarriesTCP(t *testing.T) {
	lab := nslab.Start(t, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{
			{Name: "p", Up: &nslab.Impairment{Delay: 2 * time.Millisecond, Reorder: 0.01}, Down: &nslab.Impairment{Delay: 2 * time.Millisecond}},
		}},
	}})
	var ln net.Listener
	require.NoError(t, lab.Public.Do(func() (err error) { ln, err = net.Listen("tcp4", "203.0.113.1:9000"); return err }))
	defer ln.Close()
	const size = 4 << 20
	up := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	down := bytes.Repeat([]byte("fedcba9876543210"), size/16)
	// echo-ish server: reads everything the peer sends, then answers with down.
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, size)
		if _, err := io.ReadFull(c, b); err != nil {
			got <- nil
			return
		}
		got <- b
		_, _ = c.Write(down)
	}()
	var c net.Conn
	require.NoError(t, lab.Peer("p").Do(func() (err error) { c, err = net.DialTimeout("tcp4", "203.0.113.1:9000", 10*time.Second); return err }))
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, err := c.Write(up)
	require.NoError(t, err)
	// bytes.Equal rather than require.Equal: a diff of megabytes would bury the lengths.
	b := <-got
	require.True(t, bytes.Equal(b, up), "server received %d bytes, not the %d sent", len(b), len(up))
	b, err = io.ReadAll(c)
	require.NoError(t, err, "peer received %d bytes", len(b))
	require.True(t, bytes.Equal(b, down), "peer received %d bytes, not the %d sent", len(b), len(down))
	st := lab.Peer("p").Link.Stats()
	t.Logf("%+v", st)
	require.Zero(t, st.ToRouter.Failed, "forwarder write failures: %+v", st)
	require.Zero(t, st.ToPeer.Failed, "forwarder write failures: %+v", st)
	for _, d := range []nslab.DirectionStats{st.ToRouter, st.ToPeer} {
		if d.Link.OfferedBytes > size {
			avg := d.Link.OfferedBytes / max(d.Link.Offered, 1)
			require.LessOrEqual(t, avg, int64(1600), "average frame in bytes: the link carried super-frames, not segments")
		}
	}
}

// TestForwardTCP checks a port forward lets TCP from the internet reach a LAN host, and that without one
// the router drops the connection attempt.
func TestForwardTCP(t *testing.T) {
	lab := nslab.Start(t, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "p"}}},
	}})
	r, p := lab.Routers[0], lab.Peer("p")
	var ln net.Listener
	require.NoError(t, p.Do(func() (err error) { ln, err = net.Listen("tcp4", ":9100"); return err }))
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello from the LAN"))
			c.Close()
		}
	}()
	dial := func(port uint16) (string, error) {
		var b []byte
		err := lab.Public.Do(func() error {
			c, err := net.DialTimeout("tcp4", ap(r.WAN, port).String(), 700*time.Millisecond)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			b, err = io.ReadAll(c)
			return err
		})
		return string(b), err
	}
	_, err := dial(9100)
	require.Error(t, err, "connected to the router's port 9100 before any forward")
	require.NoError(t, r.ForwardTCP(t.Context(), 9100, ap(p.Addr, 9100)))
	got, err := dial(9100)
	require.NoError(t, err, "through the forward")
	require.Equal(t, "hello from the LAN", got, "through the forward")
	require.Error(t, r.ForwardTCP(t.Context(), 9101, ap(lab.Public.Addr, 80)), "forward to an address off the LAN accepted")
}

// TestIsolationAndTeardown checks a lab adds nothing to the host's own namespace and leaves no namespace
// behind when closed.
func TestIsolationAndTeardown(t *testing.T) {
	nslab.RequireAvailable(t)
	before, err := net.Interfaces()
	require.NoError(t, err)
	lab := nslab.Start(t, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.Symmetric, Peers: []nslab.PeerConfig{{Name: "x", Down: &nslab.Impairment{Delay: time.Millisecond}}}},
		{NAT: nslab.FullCone, Hairpin: true, Peers: []nslab.PeerConfig{{Name: "y"}, {Name: "z"}}},
	}})
	after, err := net.Interfaces()
	require.NoError(t, err)
	require.Len(t, after, len(before), "interfaces of the host namespace")
	names := []string{lab.Public.NS, lab.Routers[0].NS, lab.Routers[1].NS, lab.Peer("x").NS, lab.Peer("y").NS}
	for _, ns := range names {
		_, err := os.Stat("/var/run/netns/" + ns)
		require.NoError(t, err, "namespace %s missing", ns)
	}
	require.NoError(t, lab.Close())
	for _, ns := range names {
		_, err := os.Stat("/var/run/netns/" + ns)
		require.ErrorIs(t, err, os.ErrNotExist, "namespace %s still there after Close", ns)
	}
}

// TestRemoveStale checks namespaces left by a dead process are removed (with what runs in them) and those
// of a live process are kept.
func TestRemoveStale(t *testing.T) {
	nslab.RequireAvailable(t)
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	stale := fmt.Sprintf("p2hl-%d-1-pub", dead.Process.Pid)
	live := fmt.Sprintf("p2hl-%d-999-pub", os.Getpid())
	for _, ns := range []string{stale, live} {
		out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput()
		require.NoError(t, err, "ip netns add %s: %s", ns, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", live).Run() })
	sleeper := exec.Command("ip", "netns", "exec", stale, "sleep", "60")
	require.NoError(t, sleeper.Start())
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	// Wait until it has entered the namespace (ip netns exec has done setns and exec'd sleep).
	for deadline := time.Now().Add(5 * time.Second); ; {
		out, _ := exec.Command("ip", "netns", "pids", stale).Output()
		if strings.Contains(" "+strings.Join(strings.Fields(string(out)), " ")+" ", fmt.Sprintf(" %d ", sleeper.Process.Pid)) {
			break
		}
		require.False(t, time.Now().After(deadline), "sleep never showed up in %s", stale)
		time.Sleep(10 * time.Millisecond)
	}

	require.NoError(t, nslab.RemoveStale(t.Context()))
	_, err := os.Stat("/var/run/netns/" + stale)
	require.ErrorIs(t, err, os.ErrNotExist, "stale namespace %s still there", stale)
	_, err = os.Stat("/var/run/netns/" + live)
	require.NoError(t, err, "namespace %s of this live process was removed", live)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the process in the stale namespace still runs")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []nslab.Config{
		{},
		{Routers: []nslab.RouterConfig{{NAT: nslab.Symmetric, Hairpin: true}}},
		{Routers: []nslab.RouterConfig{{Peers: []nslab.PeerConfig{{Name: "Bad Name"}}}}},
		{Routers: []nslab.RouterConfig{{Peers: []nslab.PeerConfig{{Name: "a"}}}, {Peers: []nslab.PeerConfig{{Name: "a"}}}}},
		{Routers: []nslab.RouterConfig{{Peers: []nslab.PeerConfig{{Name: "a", Up: &nslab.Impairment{Loss: 1.5}}}}}},
		{Routers: []nslab.RouterConfig{{LAN: netip.MustParsePrefix("192.168.1.0/16")}}},
		{Routers: []nslab.RouterConfig{{LAN: netip.MustParsePrefix("192.168.1.7/24")}}},
	} {
		lab, err := nslab.New(t.Context(), cfg)
		if !assert.Error(t, err, "New(%+v)", cfg) {
			lab.Close()
		}
	}
}
