//go:build linux

package nslab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Addresses of the public namespace, the lab's internet. Both sit on its bridge, so tests can tell "another
// port on the same host" from "another host".
var (
	PublicAddr  = netip.MustParseAddr("203.0.113.1")
	PublicAddr2 = netip.MustParseAddr("203.0.113.2")
)

// namePrefix starts the name of every namespace a lab makes; the process id follows it, which is how stale
// namespaces of dead processes are recognised without touching those of a lab running in another process.
const namePrefix = "p2hl-"

var (
	labSeq       atomic.Int64
	cleanupStale sync.Once
	peerName     = regexp.MustCompile(`^[a-z0-9]{1,8}$`)
)

// Config describes a lab: the routers on the public bridge and the peers behind each.
type Config struct {
	Routers []RouterConfig
	// CommandTimeout bounds each ip/nft command run while building or tearing down; default 20 s.
	CommandTimeout time.Duration
}

// RouterConfig describes one router: its NAT behaviour and the peers on its LAN.
type RouterConfig struct {
	NAT NATType
	// Hairpin makes the router forward packets a LAN host sends to the router's own public address:port
	// to the LAN host holding that mapping (source rewritten to the sender's public address). Without it
	// such packets are dropped, as many home routers do. Not supported with Symmetric.
	Hairpin bool
	// BlockUDP drops every UDP packet crossing the router, both ways, as some corporate and guest networks do: only
	// TCP gets out.
	BlockUDP bool
	// LAN is the router's LAN, a /24 inside which the router is .1 and the peers .2, .3, ...; the zero
	// value picks 10.0.N.0/24 for the Nth router (from 1). Two routers may share a LAN prefix, as two home
	// networks both on 192.168.1.0/24 do.
	LAN   netip.Prefix
	Peers []PeerConfig
}

// PeerConfig describes one host on a router's LAN.
type PeerConfig struct {
	// Name identifies the peer in the lab (Lab.Peer); 1-8 characters of [a-z0-9], unique in the lab.
	Name string
	// Up impairs the frames the peer sends towards its router, Down those it receives, like a netem qdisc on
	// the egress of each end of the link. When either is set, a userspace forwarder sits between the peer and
	// its router; nil leaves that direction untouched.
	Up, Down *Impairment
	// Seed seeds the impairment's random choices so a run can be repeated; 0 picks a random seed.
	Seed uint64
}

// Lab is a built set of namespaces. Its methods are safe for concurrent use once New has returned.
type Lab struct {
	// Public is the internet namespace: a bridge holding PublicAddr and PublicAddr2.
	Public *Host
	// Routers are in Config order.
	Routers []*Router

	name       string
	cmdTimeout time.Duration
	namespaces []string // in creation order
	peers      map[string]*Host
	links      []*Link
	closeOnce  sync.Once
	closeErr   error
}

// Router is a NAT router: its WAN leg on the public bridge, its LAN a bridge its peers hang off.
type Router struct {
	Host
	NAT      NATType
	Hairpin  bool
	BlockUDP bool
	WAN      netip.Addr   // public address
	LAN      netip.Prefix // e.g. 10.0.1.0/24; the router is .1
	Peers    []*Host
}

// Host is one namespace of the lab.
type Host struct {
	// NS is the namespace name, as `ip netns exec NS` takes it.
	NS string
	// Addr is the host's main address: a peer's LAN address, a router's LAN address, PublicAddr.
	Addr netip.Addr
	// Link is the impairment forwarder between a peer and its router, nil when the link is a plain veth.
	Link *Link
}

// Available reports why labs cannot be built here (not root, a missing command), or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, nftables)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs the %s command (apt-get install iproute2 nftables)", tool)
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("no network namespace support: %w", err)
	}
	return nil
}

// RequireAvailable skips t with one line when labs cannot be built here, unless the CI environment
// variable is "true": CI must run the lab tests, so there it fails t instead.
func RequireAvailable(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("nslab: %v (CI=true, so this is a failure, not a skip)", err)
		}
		t.Skipf("nslab: skipping network-namespace test: %v", err)
	}
}

// Start builds a lab for t (skipping t when labs are unavailable, see RequireAvailable) and registers its
// teardown with t.Cleanup, which runs even when t fails or panics.
func Start(t testing.TB, cfg Config) *Lab {
	t.Helper()
	RequireAvailable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lab, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("nslab: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("nslab: teardown: %v", err)
		}
	})
	return lab
}

// New builds the lab cfg describes. On error everything built so far is torn down.
func New(ctx context.Context, cfg Config) (*Lab, error) {
	if err := validate(cfg); err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	cleanupStale.Do(func() { _ = RemoveStale(ctx) })
	l := &Lab{
		name:       fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), labSeq.Add(1)),
		cmdTimeout: cfg.CommandTimeout,
		peers:      make(map[string]*Host),
	}
	if l.cmdTimeout <= 0 {
		l.cmdTimeout = 20 * time.Second
	}
	if err := l.build(ctx, cfg); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

func validate(cfg Config) error {
	if len(cfg.Routers) == 0 || len(cfg.Routers) > 200 {
		return fmt.Errorf("a lab needs 1-200 routers, got %d", len(cfg.Routers))
	}
	seen := map[string]bool{}
	for i, r := range cfg.Routers {
		if r.NAT < PortRestrictedCone || r.NAT > Symmetric {
			return fmt.Errorf("router %d: unknown NAT type %d", i, r.NAT)
		}
		if r.Hairpin && r.NAT == Symmetric {
			return fmt.Errorf("router %d: hairpinning is not supported with a symmetric NAT", i)
		}
		if r.LAN.IsValid() && (!r.LAN.Addr().Is4() || r.LAN.Bits() != 24 || r.LAN.Masked() != r.LAN) {
			return fmt.Errorf("router %d: LAN %v: want an IPv4 /24 prefix such as 192.168.1.0/24", i, r.LAN)
		}
		if len(r.Peers) > 200 {
			return fmt.Errorf("router %d: at most 200 peers", i)
		}
		for _, p := range r.Peers {
			if !peerName.MatchString(p.Name) {
				return fmt.Errorf("router %d: peer name %q: want 1-8 characters of [a-z0-9]", i, p.Name)
			}
			if seen[p.Name] {
				return fmt.Errorf("peer name %q used twice", p.Name)
			}
			seen[p.Name] = true
			for _, im := range []*Impairment{p.Up, p.Down} {
				if im == nil {
					continue
				}
				if err := im.Validate(); err != nil {
					return fmt.Errorf("peer %s: %w", p.Name, err)
				}
			}
		}
	}
	return nil
}

func (l *Lab) build(ctx context.Context, cfg Config) error {
	pub, err := l.addNS(ctx, "pub")
	if err != nil {
		return err
	}
	pub.Addr = PublicAddr
	l.Public = pub
	if err := l.ipAll(ctx, pub.NS,
		"link add br0 type bridge",
		// One segment per TCP frame from the public hosts (the signalling server), so an impaired link
		// loses and delays segments as a real one does, not 64 KiB super-frames.
		"link set br0 gso_max_segs 1",
		"link set br0 up",
		"addr add "+PublicAddr.String()+"/24 dev br0",
		"addr add "+PublicAddr2.String()+"/24 dev br0",
	); err != nil {
		return err
	}
	for i, rc := range cfg.Routers {
		r, err := l.addRouter(ctx, i, rc)
		if err != nil {
			return fmt.Errorf("router %d: %w", i, err)
		}
		l.Routers = append(l.Routers, r)
	}
	return nil
}

func (l *Lab) addRouter(ctx context.Context, i int, rc RouterConfig) (*Router, error) {
	h, err := l.addNS(ctx, fmt.Sprintf("r%d", i))
	if err != nil {
		return nil, err
	}
	r := &Router{
		Host:     *h,
		NAT:      rc.NAT,
		Hairpin:  rc.Hairpin,
		BlockUDP: rc.BlockUDP,
		WAN:      netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}),
		LAN:      rc.LAN,
	}
	if !r.LAN.IsValid() {
		r.LAN = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i / 250), byte(1 + i%250), 0}), 24)
	}
	r.Addr = r.LAN.Addr().Next()
	wanPort := fmt.Sprintf("r%d", i)
	if err := l.ipAll(ctx, r.NS,
		"link add wan type veth peer name "+wanPort+" netns "+l.Public.NS,
		"addr add "+r.WAN.String()+"/24 dev wan",
		"link set wan up",
		"link add lan type bridge",
		"link set lan up",
		"addr add "+r.Addr.String()+"/24 dev lan",
	); err != nil {
		return nil, err
	}
	if err := l.ipAll(ctx, l.Public.NS, "link set "+wanPort+" master br0 up"); err != nil {
		return nil, err
	}
	if err := r.Do(func() error { return writeSysctl("net/ipv4/ip_forward", "1") }); err != nil {
		return nil, err
	}
	if err := l.run(ctx, strings.NewReader(natRuleset(r)), "ip", "netns", "exec", r.NS, "nft", "-f", "-"); err != nil {
		return nil, fmt.Errorf("loading the %v ruleset: %w", r.NAT, err)
	}
	addr := r.Addr
	for j, pc := range rc.Peers {
		addr = addr.Next()
		p, err := l.addPeer(ctx, r, j, pc, addr)
		if err != nil {
			return nil, fmt.Errorf("peer %s: %w", pc.Name, err)
		}
		r.Peers = append(r.Peers, p)
		l.peers[pc.Name] = p
	}
	return r, nil
}

func (l *Lab) addPeer(ctx context.Context, r *Router, j int, pc PeerConfig, addr netip.Addr) (*Host, error) {
	p, err := l.addNS(ctx, "p-"+pc.Name)
	if err != nil {
		return nil, err
	}
	p.Addr = addr
	bridgePort := fmt.Sprintf("p%d", j)
	if pc.Up == nil && pc.Down == nil {
		if err := l.ipAll(ctx, p.NS, "link add eth0 type veth peer name "+bridgePort+" netns "+r.NS); err != nil {
			return nil, err
		}
	} else {
		// peer eth0 <-> wire "peer" ... forwarder ... wire "router" <-> router bridge port
		w, err := l.addNS(ctx, "w-"+pc.Name)
		if err != nil {
			return nil, err
		}
		if err := l.ipAll(ctx, p.NS, "link add eth0 type veth peer name peer netns "+w.NS); err != nil {
			return nil, err
		}
		if err := l.ipAll(ctx, w.NS,
			"link add router type veth peer name "+bridgePort+" netns "+r.NS,
			"link set peer promisc on up",
			"link set router promisc on up",
		); err != nil {
			return nil, err
		}
		link, err := startLink(w, "peer", "router", pc.Up, pc.Down, pc.Seed)
		if err != nil {
			return nil, fmt.Errorf("impairment forwarder: %w", err)
		}
		l.links = append(l.links, link)
		p.Link = link
		// As on br0: the peer's TCP sends MTU-sized frames through the forwarder.
		if err := l.ipAll(ctx, p.NS, "link set eth0 gso_max_segs 1"); err != nil {
			return nil, err
		}
	}
	if err := l.ipAll(ctx, r.NS, "link set "+bridgePort+" master lan up"); err != nil {
		return nil, err
	}
	if err := l.ipAll(ctx, p.NS,
		"addr add "+addr.String()+"/24 dev eth0",
		"link set eth0 up",
		"route add default via "+r.Addr.String(),
	); err != nil {
		return nil, err
	}
	return p, nil
}

// addNS creates a namespace with loopback up and IPv6 off (the lab is IPv4; IPv6 autoconfiguration would
// only add noise to the links and the candidates).
func (l *Lab) addNS(ctx context.Context, role string) (*Host, error) {
	name := l.name + "-" + role
	if err := l.run(ctx, nil, "ip", "netns", "add", name); err != nil {
		return nil, err
	}
	l.namespaces = append(l.namespaces, name)
	h := &Host{NS: name}
	if err := h.Do(func() error {
		// bridge-nf-call-*: when the host kernel has br_netfilter, frames bridged on a router's LAN would
		// otherwise cross its IP firewall, and peers on one LAN could not talk directly.
		for _, key := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6",
			"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-arptables"} {
			value := "1"
			if strings.HasPrefix(key, "net/bridge/") {
				value = "0"
			}
			if err := writeSysctl(key, value); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return h, l.ipAll(ctx, name, "link set lo up")
}

// Peer returns the peer named name, or nil.
func (l *Lab) Peer(name string) *Host { return l.peers[name] }

// ForwardTCP makes the router pass TCP connections to its public address and port on to the LAN address
// to, like a port forward configured on a home router (for baselines such as plain TCP across the NATs).
func (r *Router) ForwardTCP(ctx context.Context, port uint16, to netip.AddrPort) error {
	if !r.LAN.Contains(to.Addr()) {
		return fmt.Errorf("forward to %v: not on the router's LAN %v", to, r.LAN)
	}
	rule := fmt.Sprintf("add rule ip lab prerouting iifname wan tcp dport %d dnat ip to %s", port, to)
	return runCmd(ctx, 20*time.Second, nil, "ip", append([]string{"netns", "exec", r.NS, "nft"}, strings.Fields(rule)...)...)
}

// Close stops the forwarders, ends every process still running in the lab's namespaces and deletes them.
// It is idempotent.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		for _, link := range l.links {
			link.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*l.cmdTimeout)
		defer cancel()
		for i := len(l.namespaces) - 1; i >= 0; i-- {
			if err := deleteNS(ctx, l.namespaces[i]); err != nil {
				errs = append(errs, err)
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// Command returns a command that runs name with args inside h's namespace (via `ip netns exec`).
// The context kills it, as with exec.CommandContext.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// WaitAccepting waits, for at most within, until a TCP connection from h's namespace to addr succeeds: a server
// just started there is ready. It returns the last dial error when time runs out.
func (h *Host) WaitAccepting(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := h.Do(func() error {
			c, err := net.DialTimeout("tcp4", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Do runs f on an OS thread switched into h's namespace. Sockets f creates live in that namespace and can
// be used from any goroutine afterwards. The thread is discarded when f returns, so it never runs other
// goroutines in the wrong namespace.
func (h *Host) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Deliberately no UnlockOSThread: the Go runtime ends a locked thread when its goroutine exits.
		runtime.LockOSThread()
		fd, err := syscall.Open("/var/run/netns/"+h.NS, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("opening namespace %s: %w", h.NS, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		syscall.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", h.NS, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// writeSysctl writes a /proc/sys value of the calling thread's network namespace.
func writeSysctl(key, value string) error {
	return os.WriteFile("/proc/sys/"+key, []byte(value), 0)
}

func (l *Lab) ipAll(ctx context.Context, ns string, cmds ...string) error {
	for _, c := range cmds {
		if err := l.run(ctx, nil, "ip", append([]string{"-n", ns}, strings.Fields(c)...)...); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) run(ctx context.Context, stdin *strings.Reader, name string, args ...string) error {
	return runCmd(ctx, l.cmdTimeout, stdin, name, args...)
}

func runCmd(ctx context.Context, timeout time.Duration, stdin *strings.Reader, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// deleteNS kills what still runs in ns (processes the lab's users started there) and deletes it.
func deleteNS(ctx context.Context, ns string) error {
	out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return runCmd(ctx, 20*time.Second, nil, "ip", "netns", "delete", ns)
}

// RemoveStale deletes the lab namespaces whose creating process is gone (a test binary that crashed or
// was killed before its cleanup ran), ending what still runs in them. Labs of live processes are left
// alone. New calls it once per process.
func RemoveStale(ctx context.Context) error {
	entries, err := os.ReadDir("/var/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // its owner still runs
		}
		errs = append(errs, deleteNS(ctx, e.Name()))
	}
	return errors.Join(errs...)
}
