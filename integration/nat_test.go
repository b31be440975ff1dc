//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/p2phttp/p2phttp/internal/nslab"
	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/stretchr/testify/require"
)

// What every scenario moves.
const (
	bigFileSize = 32 << 20
	bigFileName = "big.bin"
	// pathFileName is the first pathFileSize bytes of the big file, for the impaired-path tests.
	pathFileName = "path.bin"
	pathFileSize = 2 << 20
	pageName     = "hello.html"
)

// Where the public namespace runs the signalling server.
var (
	signalURL = "http://" + nslab.PublicAddr.String() + ":8080"
	stunAddr  = nslab.PublicAddr.String() + ":3478"
)

// Per-step limits, generous for a loaded 2-core CI machine, so a broken build fails instead of hanging.
const (
	buildTimeout    = 4 * time.Minute
	signalReady     = 20 * time.Second
	connectTimeout  = 60 * time.Second // serve + get meeting
	transferTimeout = 150 * time.Second
	curlTimeout     = 60 * time.Second
	// punchFailBound is how long get may take to give up between two symmetric NATs: the CLI's punch
	// timeout plus gathering and signalling, with margin for a loaded machine.
	punchFailBound = rendezvous.DefaultPunchTimeout + 20*time.Second
)

var (
	binary   string // the p2phttp binary TestMain built, "" when the lab is unavailable
	buildErr error
	dataDir  string // holds bigFileName and pageName
	bigSum   [sha256.Size]byte
	bigData  []byte // the big file's bytes, for the TCP baseline
	page     []byte
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if nslab.Available() == nil {
			tmp, err := os.MkdirTemp("", "p2phttp-integration-")
			if err != nil {
				fmt.Fprintln(os.Stderr, "integration:", err)
				return 1
			}
			defer os.RemoveAll(tmp)
			buildErr = buildBinary(tmp)
			if err := writeData(filepath.Join(tmp, "data")); err != nil {
				fmt.Fprintln(os.Stderr, "integration:", err)
				return 1
			}
		}
		return m.Run()
	}())
}

// buildBinary builds cmd/p2phttp (without -race, for speed) into dir.
func buildBinary(dir string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	out := filepath.Join(dir, "p2phttp")
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", out, "github.com/p2phttp/p2phttp/cmd/p2phttp")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/p2phttp: %w\n%s", err, msg)
	}
	binary = out
	return nil
}

// writeData writes the served folder: a pseudo-random big file (incompressible, reproducible) and a page.
func writeData(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	big := make([]byte, bigFileSize)
	_, _ = rand.NewChaCha8([32]byte{'p', '2', 'p'}).Read(big)
	bigSum = sha256.Sum256(big)
	bigData = big
	page = []byte("<!doctype html><title>p2phttp lab</title><p>hello through two NATs</p>\n")
	dataDir = dir
	return errors.Join(
		os.WriteFile(filepath.Join(dir, bigFileName), big, 0o644),
		os.WriteFile(filepath.Join(dir, pathFileName), big[:pathFileSize], 0o644),
		os.WriteFile(filepath.Join(dir, pageName), page, 0o644))
}

// requireBinary skips or fails t as nslab.RequireAvailable does (also when curl is missing), and fails it
// when the build failed.
func requireBinary(t *testing.T) {
	t.Helper()
	nslab.RequireAvailable(t)
	if _, err := exec.LookPath("curl"); err != nil {
		require.NotEqual(t, "true", os.Getenv("CI"), "integration: needs curl (CI=true, so this is a failure, not a skip)")
		t.Skip("integration: skipping: needs curl (apt-get install curl)")
	}
	require.NoError(t, buildErr, "building p2phttp")
}

// proc is a p2phttp process running in a lab namespace, its stderr watched line by line.
type proc struct {
	name  string
	cmd   *exec.Cmd
	start time.Time
	done  chan struct{}
	err   error // valid after done

	mu          sync.Mutex
	stderr      bytes.Buffer
	connectedAt time.Time // when the "connected:" (or "connected via relay") line appeared
	connected   string    // that line
	connectedC  chan struct{}
}

var (
	metIn         = regexp.MustCompile(`set up in (\S+)`) // gathering, punching and the first stream; not the wait for the peer
	connectedLine = regexp.MustCompile(`connected:|connected via relay`)
)

// startP2P starts p2phttp args in host; the process is killed (if still running) when t ends.
func startP2P(t *testing.T, host *nslab.Host, name string, args ...string) *proc {
	t.Helper()
	return startP2PTo(t, host, name, io.Discard, args...)
}

// startP2PTo is startP2P with the process's stdout going to stdout.
func startP2PTo(t *testing.T, host *nslab.Host, name string, stdout io.Writer, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{name: name, done: make(chan struct{}), connectedC: make(chan struct{})}
	p.cmd = host.Command(ctx, binary, args...)
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(syscall.SIGTERM) }
	p.cmd.WaitDelay = 5 * time.Second
	p.cmd.Stdout = stdout
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		cancel()
		require.NoError(t, err, "starting %s", name)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			if p.connectedAt.IsZero() && connectedLine.MatchString(line) {
				p.connectedAt, p.connected = time.Now(), line
				close(p.connectedC)
			}
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr) // after an over-long line, keep draining so the process never blocks
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// wait waits for the process to exit within d and returns its error, or fails t.
func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s still running after %v", p.name, d)
		return nil
	}
}

// waitConnected waits for the "connected:" line and returns the time from start to it.
func (p *proc) waitConnected(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	select {
	case <-p.connectedC:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.connectedAt.Sub(p.start)
	case <-p.done:
		t.Fatalf("%s exited (%v) before connecting", p.name, p.err)
	case <-time.After(d):
		t.Fatalf("%s did not connect within %v", p.name, d)
	}
	return 0
}

// startSignal runs the signalling server (with its TURN relay on the STUN port + 2, unless extra says --turn=) in
// the lab's public namespace and waits until it accepts.
func startSignal(t *testing.T, lab *nslab.Lab, extra ...string) {
	t.Helper()
	args := append([]string{"signal", "--http", strings.TrimPrefix(signalURL, "http://"), "--stun", stunAddr}, extra...)
	p := startP2P(t, lab.Public, "signal", args...)
	deadline := time.Now().Add(signalReady)
	for {
		var err error
		_ = lab.Public.Do(func() error {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", strings.TrimPrefix(signalURL, "http://"), time.Second); err == nil {
				c.Close()
			}
			return nil
		})
		if err == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("signal exited: %v", p.err)
		default:
		}
		require.False(t, time.Now().After(deadline), "signal not accepting within %v: %v", signalReady, err)
		time.Sleep(50 * time.Millisecond)
	}
}

// peerArgs adds the lab's signalling and STUN addresses to a peer command, and -v when the environment
// variable P2PHTTP_LAB_VERBOSE is set (the peers' logs are shown when a scenario fails).
func peerArgs(args ...string) []string {
	args = append(args, "--signal", signalURL, "--stun", stunAddr)
	if os.Getenv("P2PHTTP_LAB_VERBOSE") != "" {
		args = append(args, "-v")
	}
	return args
}

// result is one row of the closing table.
type result struct {
	scenario string
	outcome  string
	connect  time.Duration // get: start to "connected:" line
	metIn    string        // as the CLI reported it
	rate     float64       // MiB/s of the big file after connecting
	tcpRate  float64       // MiB/s of the same bytes over kernel TCP on the same path (baseline)
	tcpCC    string        // the kernel's congestion control for that baseline
	path     string        // the connected line's pair
}

var (
	resultsMu sync.Mutex
	results   []result
)

func record(r result) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results = append(results, r)
}

// scenario is one lab; its peer "a" runs serve, its peer "b" runs get and then forward.
type scenario struct {
	name      string
	routers   []nslab.RouterConfig
	wantPunch bool // false: punching must fail
	noRelay   bool // the signalling server runs no TURN relay
}

// lossy is what `tc qdisc add dev eth0 root netem delay 40ms loss 1%` on each peer would do: every
// packet either peer sends is delayed 40 ms and lost with 1% probability, so the path's RTT is 80 ms.
func lossy() *nslab.Impairment { return &nslab.Impairment{Delay: 40 * time.Millisecond, Loss: 0.01} }

var homeLAN = netip.MustParsePrefix("192.168.1.0/24")

func twoRouters(a, b nslab.NATType) []nslab.RouterConfig {
	return []nslab.RouterConfig{
		{NAT: a, Peers: []nslab.PeerConfig{{Name: "a"}}},
		{NAT: b, Peers: []nslab.PeerConfig{{Name: "b"}}},
	}
}

var scenarios = []scenario{
	{name: "port-restricted both sides", routers: twoRouters(nslab.PortRestrictedCone, nslab.PortRestrictedCone), wantPunch: true},
	// Two home networks that both use 192.168.1.0/24: each peer is 192.168.1.2, so the other's host
	// candidate is its own address.
	{name: "port-restricted, identical LANs", routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, LAN: homeLAN, Peers: []nslab.PeerConfig{{Name: "a"}}},
		{NAT: nslab.PortRestrictedCone, LAN: homeLAN, Peers: []nslab.PeerConfig{{Name: "b"}}},
	}, wantPunch: true},
	{name: "full cone both sides", routers: twoRouters(nslab.FullCone, nslab.FullCone), wantPunch: true},
	{name: "restricted cone both sides", routers: twoRouters(nslab.RestrictedCone, nslab.RestrictedCone), wantPunch: true},
	// The full-cone side learns the symmetric side's port towards it from its punches (peer-reflexive).
	{name: "full cone serves symmetric", routers: twoRouters(nslab.FullCone, nslab.Symmetric), wantPunch: true},
	{name: "symmetric serves full cone", routers: twoRouters(nslab.Symmetric, nslab.FullCone), wantPunch: true},
	{name: "same router, hairpin", routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Hairpin: true, Peers: []nslab.PeerConfig{{Name: "a"}, {Name: "b"}}},
	}, wantPunch: true},
	{name: "same router, no hairpin", routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "a"}, {Name: "b"}}},
	}, wantPunch: true},
	{name: "port-restricted, 40ms+1% loss both links", routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "a", Up: lossy()}}},
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "b", Up: lossy()}}},
	}, wantPunch: true},
	// Punching cannot work here: each side's port towards the other is unpredictable. The relay carries it.
	{name: "symmetric both sides, relayed", routers: twoRouters(nslab.Symmetric, nslab.Symmetric), wantPunch: true},
	{name: "symmetric both sides, no relay", routers: twoRouters(nslab.Symmetric, nslab.Symmetric), noRelay: true},
	// Without a relay too: the port-restricted side only lets in the port it sent to, and the symmetric side's port
	// towards it is unpredictable, but the hard-NAT punch finds one of many (birthday paradox).
	{name: "port-restricted serves symmetric, no relay", routers: twoRouters(nslab.PortRestrictedCone, nslab.Symmetric), noRelay: true, wantPunch: true},
}

// TestNATScenarios runs the real binary between two peers behind each pair of NATs: serve --dir on one
// side; on the other, get of a 32 MiB file (SHA-256 checked) and forward with curl for a page. Without a
// relay, between NATs that defeat punching, get must fail with the punching error within its timeout instead.
func TestNATScenarios(t *testing.T) {
	requireBinary(t)
	resultsMu.Lock()
	results = nil // a fresh table per run (-count)
	resultsMu.Unlock()
	t.Cleanup(func() { t.Logf("NAT scenarios:\n%s", resultTable()) }) // after the parallel subtests too
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			if !sc.wantPunch {
				// Failing scenarios mostly wait out the punch timeout: let them wait together, after the
				// transfers, so they neither slow the suite nor disturb the rate measurements.
				t.Parallel()
			}
			runScenario(t, i, sc)
		})
	}
}

func resultTable() string {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tresult\tconnect (wall)\tmet in (CLI)\trate MiB/s\tkernel TCP MiB/s\tratio\tpath")
	for _, r := range results {
		rate, tcp, ratio := "-", "-", "-"
		if r.rate > 0 {
			rate = fmt.Sprintf("%.1f", r.rate)
		}
		if r.tcpRate > 0 {
			tcp = fmt.Sprintf("%.1f (%s)", r.tcpRate, r.tcpCC)
			if r.rate > 0 {
				ratio = fmt.Sprintf("%.2f", r.rate/r.tcpRate)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n", r.scenario, r.outcome, r.connect.Round(time.Millisecond), r.metIn, rate, tcp, ratio, r.path)
	}
	tw.Flush()
	return b.String()
}

func runScenario(t *testing.T, i int, sc scenario) {
	row := result{scenario: sc.name, outcome: "FAIL"}
	defer func() { record(row) }()
	lab := nslab.Start(t, nslab.Config{Routers: sc.routers})
	if sc.noRelay {
		startSignal(t, lab, "--turn=")
	} else {
		startSignal(t, lab)
	}
	code := fmt.Sprintf("%d-lab-scenario-%d", 100+rand.IntN(900), i)

	startP2P(t, lab.Peer("a"), "serve", peerArgs("serve", "--dir", dataDir, code)...)
	out := filepath.Join(t.TempDir(), bigFileName)
	get := startP2P(t, lab.Peer("b"), "get", peerArgs("get", code, "/"+bigFileName, "-o", out)...)

	if !sc.wantPunch {
		err := get.wait(t, punchFailBound)
		row.connect = time.Since(get.start)
		msg := get.output()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "get ended with %v, want a non-zero exit as punching cannot work here; stderr:\n%s", err, msg)
		require.Positive(t, ee.ExitCode(), "get's exit code, want non-zero as punching cannot work here; stderr:\n%s", msg)
		require.Regexp(t, `(?i)could not punch|punching failed`, msg, "get failed (%v) without saying punching failed", err)
		t.Logf("get gave up after %v: %s", row.connect.Round(time.Millisecond), strings.TrimSpace(msg))
		row.outcome = "fails as expected (punching failed)"
		return
	}

	row.connect = get.waitConnected(t, connectTimeout)
	get.mu.Lock()
	connectedAt, line := get.connectedAt, get.connected
	get.mu.Unlock()
	if m := metIn.FindStringSubmatch(line); m != nil {
		row.metIn = m[1]
	}
	if _, relay, ok := strings.Cut(line, "connected via "); ok {
		row.path, _, _ = strings.Cut(relay, " (")
	} else if _, pair, ok := strings.Cut(line, "("); ok {
		row.path, _, _ = strings.Cut(pair, ")")
	}
	require.NoError(t, get.wait(t, transferTimeout), "get")
	elapsed := time.Since(connectedAt)
	sum, n := fileSum(t, out)
	require.Equal(t, int64(bigFileSize), n, "bytes got")
	require.Equal(t, bigSum, sum, "SHA-256 of the bytes got")
	row.rate = float64(bigFileSize) / (1 << 20) / elapsed.Seconds()

	// forward + curl, a new meeting with the same code: serve waits for the next peer.
	fwd := startP2P(t, lab.Peer("b"), "forward", peerArgs("forward", code, "--listen", "127.0.0.1:8000")...)
	fwd.waitConnected(t, connectTimeout)
	curlPage(t, lab.Peer("b"))
	row.tcpRate, row.tcpCC = tcpBaseline(t, lab)
	row.outcome = "ok"
}

// tcpBaseline moves the big file's bytes from peer a to peer b over kernel TCP on the same path as the
// scenario (through a port forward on a's router when they are behind different routers) and returns
// the rate in MiB/s and the sender's congestion control: the yardstick for the rates in the table.
func tcpBaseline(t *testing.T, lab *nslab.Lab) (float64, string) {
	t.Helper()
	a, b := lab.Peer("a"), lab.Peer("b")
	target := netip.AddrPortFrom(a.Addr, 9100)
	for _, r := range lab.Routers {
		if slices.Contains(r.Peers, a) && !slices.Contains(r.Peers, b) {
			require.NoError(t, r.ForwardTCP(t.Context(), 9100, target))
			target = netip.AddrPortFrom(r.WAN, 9100)
		}
	}
	var ln net.Listener
	var cc []byte
	require.NoError(t, a.Do(func() (err error) {
		cc, _ = os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
		ln, err = net.Listen("tcp4", ":9100")
		return err
	}))
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(transferTimeout))
		_, _ = c.Write(bigData)
	}()
	var n int64
	var elapsed time.Duration
	err := b.Do(func() error {
		start := time.Now()
		c, err := net.DialTimeout("tcp4", target.String(), 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(transferTimeout))
		n, err = io.Copy(io.Discard, c)
		elapsed = time.Since(start)
		return err
	})
	require.NoError(t, err, "TCP baseline to %v", target)
	require.Equal(t, int64(bigFileSize), n, "TCP baseline to %v: bytes", target)
	return float64(bigFileSize) / (1 << 20) / elapsed.Seconds(), strings.TrimSpace(string(cc))
}

// curlPage fetches the page with curl on host through the forward listening there on 127.0.0.1:8000, and fails t
// unless it arrives byte-exact.
func curlPage(t *testing.T, host *nslab.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), curlTimeout)
	defer cancel()
	body, err := host.Command(ctx, "curl", "-sS", "--fail", "--max-time", "30", "http://127.0.0.1:8000/"+pageName).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	require.NoError(t, err, "curl through forward")
	require.Equal(t, page, body, "curl got")
}

func fileSum(t *testing.T, name string) ([sha256.Size]byte, int64) {
	t.Helper()
	f, err := os.Open(name)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	require.NoError(t, err)
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum, n
}
