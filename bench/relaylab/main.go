//go:build linux

// Command relaylab measures, in the NAT lab (internal/nslab), what starting on the relay costs and gains:
//
//   - first response: the time from starting both peers (`p2phttp serve --dir` behind one port-restricted cone
//     NAT, `p2phttp get` of a 100-byte file behind another, both at once) to get's exit with the response, with
//     -link-delay on each peer's link each way. relay-first is today's p2phttp: the signalling server runs its TURN
//     relay, the guest allocates before it meets, and the path starts on the first route that answers. punch-first
//     meets through a second signalling server in the same lab started with --turn= (no relay): the path can start
//     only on a punched route, as before the relay existed, and nobody waits for an allocation. The two alternate,
//     -first times each; the table gives medians and min-max, and the time to get's "connected" line.
//   - relayed throughput: a 32 MiB (-mib) file from serve to get between two symmetric NATs, so only the relay on
//     the signalling host carries it (its rate limit off: --turn-rate -1), against one kernel TCP connection from
//     peer a (behind a port forward on its router) to peer b through a TCP forwarder on the same host, the public
//     namespace. The two alternate -reps times, order rotating; the table gives MB/s (10^6 bytes/s) medians and
//     min-max, and the per-repetition ratio. p2phttp's time runs from get's "connected" line to its exit (the
//     request, the response, writing the file); TCP's from the dial to the last byte. Every file's SHA-256 is
//     checked.
//
// It needs root, iproute2 and nftables, and runs from the repository root:
//
//	go run ./bench/relaylab                              # 20 first responses each way, 5 transfers each
//	go run ./bench/relaylab -first 10 -reps 3 -link-delay 25ms
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/p2phttp/p2phttp/internal/nslab"
)

// The lab's signalling servers: with the relay (relay-first, and the throughput runs) and without (punch-first).
var (
	pub         = nslab.PublicAddr.String()
	relaySignal = server{http: pub + ":8080", stun: pub + ":3478"}
	plainSignal = server{http: pub + ":8090", stun: pub + ":3488", extra: []string{"--stun-alt", "off", "--turn="}}
)

type server struct {
	http, stun string
	extra      []string
}

const (
	smallName = "small.bin"
	bigName   = "big.bin"
	tcpPort   = 9100 // on peer a, forwarded by its router
	fwdPort   = 9200 // the forwarder on the public host
)

type config struct {
	first     int
	reps      int
	size      int64
	linkDelay time.Duration
	timeout   time.Duration
	p2phttp   string
}

func main() {
	var c config
	var mib int64
	flag.IntVar(&c.first, "first", 20, "first-response runs of each mode (0: skip)")
	flag.IntVar(&c.reps, "reps", 5, "throughput repetitions of each system (0: skip)")
	flag.Int64Var(&mib, "mib", 32, "MiB per throughput run")
	flag.DurationVar(&c.linkDelay, "link-delay", 10*time.Millisecond, "one-way delay on each peer's link, each way, for the first-response runs")
	flag.DurationVar(&c.timeout, "timeout", 2*time.Minute, "a run not done after this long fails the benchmark")
	flag.StringVar(&c.p2phttp, "p2phttp", "", "p2phttp `BINARY` to run (default: build ./cmd/p2phttp)")
	flag.Parse()
	switch {
	case c.first < 0 || c.reps < 0:
		fail(2, errors.New("-first and -reps must not be negative"))
	case mib < 1 || mib > 4096:
		fail(2, errors.New("-mib must be 1-4096"))
	case c.linkDelay < 0 || c.linkDelay > 5*time.Second:
		fail(2, errors.New("-link-delay must be 0-5s"))
	case c.timeout <= 0:
		fail(2, errors.New("-timeout must be positive"))
	}
	c.size = mib << 20
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fail(1, err)
	}
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "relaylab:", err)
	os.Exit(code)
}

func run(ctx context.Context, c config) error {
	if err := nslab.Available(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "relaylab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if c.p2phttp == "" {
		c.p2phttp = filepath.Join(tmp, "p2phttp")
		if msg, err := exec.CommandContext(ctx, "go", "build", "-o", c.p2phttp, "./cmd/p2phttp").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/p2phttp (run from the repository root, or pass -p2phttp): %w\n%s", err, msg)
		}
	}
	data := filepath.Join(tmp, "data")
	big, err := writeData(data, c.size)
	if err != nil {
		return err
	}
	b := &bench{cfg: c, dataDir: data, big: big, outDir: tmp}
	fmt.Printf("relaylab: %d CPUs; figures from a loaded machine are noise\n", runtime.NumCPU())
	if c.first > 0 {
		if err := b.firstResponse(ctx); err != nil {
			return fmt.Errorf("first response: %w", err)
		}
	}
	if c.reps > 0 {
		if err := b.throughput(ctx); err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
	}
	return nil
}

type bench struct {
	cfg     config
	dataDir string
	big     []byte
	outDir  string
	seq     int
}

// writeData writes the served folder: a 100-byte file and the big pseudo-random (incompressible) one.
func writeData(dir string, size int64) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	big := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{'r', 'e', 'l', 'a', 'y'}).Read(big)
	return big, errors.Join(
		os.WriteFile(filepath.Join(dir, smallName), big[:100], 0o644),
		os.WriteFile(filepath.Join(dir, bigName), big, 0o644))
}

// firstResponse alternates relay-first and punch-first meetings between two port-restricted cone NATs.
func (b *bench) firstResponse(ctx context.Context) error {
	im := func() *nslab.Impairment { return &nslab.Impairment{Delay: b.cfg.linkDelay} }
	lab, err := nslab.New(ctx, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "a", Up: im(), Down: im()}}},
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "b", Up: im(), Down: im()}}},
	}})
	if err != nil {
		return err
	}
	defer lab.Close()
	for _, s := range []server{relaySignal, plainSignal} {
		stop, err := b.startSignal(ctx, lab, s)
		if err != nil {
			return err
		}
		defer stop()
	}
	modes := []struct {
		name string
		srv  server
	}{{"relay-first", relaySignal}, {"punch-first", plainSignal}}
	total := map[string][]time.Duration{}
	connected := map[string][]time.Duration{}
	routes := map[string]map[string]int{}
	for i := range b.cfg.first {
		for j := range modes {
			m := modes[(i+j)%len(modes)]
			tot, conn, route, err := b.meetOnce(ctx, lab, m.srv)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", m.name, i+1, err)
			}
			total[m.name] = append(total[m.name], tot)
			connected[m.name] = append(connected[m.name], conn)
			if routes[m.name] == nil {
				routes[m.name] = map[string]int{}
			}
			routes[m.name][route]++
		}
	}
	rtt := 4 * b.cfg.linkDelay
	fmt.Printf("\nfirst response: port-restricted cone <-> port-restricted cone, %v one way on each peer's link (peer-to-peer RTT %v, peer-to-server %v), %d runs each, alternating\n",
		b.cfg.linkDelay, rtt, rtt/2, b.cfg.first)
	fmt.Printf("%-12s %-28s %-28s %s\n", "mode", "start to response", "start to connected", "first route")
	for _, m := range modes {
		fmt.Printf("%-12s %-28s %-28s %s\n", m.name, durStats(total[m.name]), durStats(connected[m.name]), routeCounts(routes[m.name]))
	}
	rf, pf := median(total["relay-first"]), median(total["punch-first"])
	fmt.Printf("relay-first / punch-first (medians): %.2f\n", float64(rf)/float64(pf))
	return nil
}

var connectedLine = regexp.MustCompile(`connected:|connected via relay`)

// meetOnce starts serve on a and get of the small file on b at once, through srv, and returns the time to get's
// exit (the response), to its connected line, and which route the line names.
func (b *bench) meetOnce(ctx context.Context, lab *nslab.Lab, srv server) (total, connected time.Duration, route string, err error) {
	b.seq++
	code := fmt.Sprintf("%d-relay-lab", 100+b.seq)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	out := filepath.Join(b.outDir, "small.out")
	os.Remove(out)
	start := time.Now()
	serve := b.command(ctx, lab.Peer("a"), srv, "serve", "--dir", b.dataDir, "--access-log=false", code)
	get := b.command(ctx, lab.Peer("b"), srv, "get", code, "/"+smallName, "-o", out)
	lines := &lineWatch{re: connectedLine}
	get.Stderr = lines
	var serveErr bytes.Buffer
	serve.Stderr = &serveErr
	if err := serve.Start(); err != nil {
		return 0, 0, "", err
	}
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
	}()
	if err := get.Run(); err != nil {
		return 0, 0, "", fmt.Errorf("get: %w: %s (serve: %s)", err, lines.text(), serveErr.String())
	}
	total = time.Since(start)
	at, line := lines.first()
	if at.IsZero() {
		return 0, 0, "", fmt.Errorf("get printed no connected line: %s", lines.text())
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, b.big[:100]) {
		return 0, 0, "", fmt.Errorf("get wrote %d bytes that differ from the file (%v)", len(got), err)
	}
	route = "direct"
	if strings.Contains(line, "connected via relay") {
		route = "relay"
	}
	return total, at.Sub(start), route, nil
}

// throughput alternates a relayed p2phttp transfer between two symmetric NATs and kernel TCP through a forwarder
// on the relay's host.
func (b *bench) throughput(ctx context.Context) error {
	lab, err := nslab.New(ctx, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.Symmetric, Peers: []nslab.PeerConfig{{Name: "a"}}},
		{NAT: nslab.Symmetric, Peers: []nslab.PeerConfig{{Name: "b"}}},
	}})
	if err != nil {
		return err
	}
	defer lab.Close()
	srv := relaySignal
	srv.extra = []string{"--turn-rate", "-1"}
	stop, err := b.startSignal(ctx, lab, srv)
	if err != nil {
		return err
	}
	defer stop()
	a := lab.Peer("a")
	target := netip.AddrPortFrom(a.Addr, tcpPort)
	if err := lab.Routers[0].ForwardTCP(ctx, tcpPort, target); err != nil {
		return err
	}
	fwd, err := startForwarder(lab.Public, netip.AddrPortFrom(nslab.PublicAddr, fwdPort), netip.AddrPortFrom(lab.Routers[0].WAN, tcpPort))
	if err != nil {
		return err
	}
	defer fwd.Close()
	systems := []string{"p2phttp-relayed", "tcp-via-relay-host"}
	rates := map[string][]float64{}
	var ratios []float64
	for i := range b.cfg.reps {
		rep := map[string]float64{}
		for j := range systems {
			sys := systems[(i+j)%len(systems)]
			var rate float64
			var err error
			if sys == systems[0] {
				rate, err = b.p2pTransfer(ctx, lab, srv)
			} else {
				rate, err = b.tcpTransfer(ctx, lab, target)
			}
			if err != nil {
				return fmt.Errorf("%s run %d: %w", sys, i+1, err)
			}
			rep[sys] = rate
			rates[sys] = append(rates[sys], rate)
		}
		ratios = append(ratios, rep[systems[0]]/rep[systems[1]])
	}
	fmt.Printf("\nrelayed throughput: symmetric <-> symmetric, %d MiB per run, %d runs each, alternating; TURN rate limit off; TCP's congestion control %s\n",
		b.cfg.size>>20, b.cfg.reps, defaultCC())
	fmt.Printf("%-20s %s\n", "system", "MB/s median [min-max]")
	for _, s := range systems {
		fmt.Printf("%-20s %s\n", s, floatStats(rates[s]))
	}
	fmt.Printf("p2phttp / tcp per repetition: %s\n", floatStats(ratios))
	return nil
}

// p2pTransfer moves the big file from serve on a to get on b through srv and returns MB/s.
func (b *bench) p2pTransfer(ctx context.Context, lab *nslab.Lab, srv server) (float64, error) {
	b.seq++
	code := fmt.Sprintf("%d-relay-lab", 100+b.seq)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	out := filepath.Join(b.outDir, "big.out")
	os.Remove(out)
	serve := b.command(ctx, lab.Peer("a"), srv, "serve", "--dir", b.dataDir, "--access-log=false", code)
	if err := serve.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
	}()
	get := b.command(ctx, lab.Peer("b"), srv, "get", code, "/"+bigName, "-o", out)
	lines := &lineWatch{re: connectedLine}
	get.Stderr = lines
	if err := get.Run(); err != nil {
		return 0, fmt.Errorf("get: %w: %s", err, lines.text())
	}
	end := time.Now()
	at, line := lines.first()
	if !strings.Contains(line, "connected via relay") {
		return 0, fmt.Errorf("not relayed: %q", line)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		return 0, err
	}
	if sha256.Sum256(got) != sha256.Sum256(b.big) {
		return 0, fmt.Errorf("get wrote %d bytes that differ from the file", len(got))
	}
	return float64(len(got)) / end.Sub(at).Seconds() / 1e6, nil
}

// tcpTransfer sends the big file from a (listening on target, forwarded by its router) to b, which connects to the
// forwarder on the public host, and returns MB/s from the dial to the last byte.
func (b *bench) tcpTransfer(ctx context.Context, lab *nslab.Lab, target netip.AddrPort) (float64, error) {
	var ln net.Listener
	if err := lab.Peer("a").Do(func() (err error) {
		ln, err = net.Listen("tcp4", target.String())
		return err
	}); err != nil {
		return 0, err
	}
	defer ln.Close()
	sent := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(b.cfg.timeout))
		if _, err = c.Write(b.big); err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		sent <- err
	}()
	start := time.Now()
	var c net.Conn
	if err := lab.Peer("b").Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", netip.AddrPortFrom(nslab.PublicAddr, fwdPort).String(), 10*time.Second)
		return err
	}); err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(b.cfg.timeout))
	h := sha256.New()
	n, err := io.Copy(h, c)
	end := time.Now()
	if err != nil {
		return 0, err
	}
	if err := <-sent; err != nil {
		return 0, fmt.Errorf("sender: %w", err)
	}
	if n != int64(len(b.big)) || !bytes.Equal(h.Sum(nil), sha256Of(b.big)) {
		return 0, fmt.Errorf("received %d bytes that differ from the file", n)
	}
	return float64(n) / end.Sub(start).Seconds() / 1e6, nil
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// forwarder passes TCP connections accepted on the public host on to a fixed address, as a relay host would.
type forwarder struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startForwarder(h *nslab.Host, listen, to netip.AddrPort) (*forwarder, error) {
	f := &forwarder{}
	if err := h.Do(func() (err error) {
		f.ln, err = net.Listen("tcp4", listen.String())
		return err
	}); err != nil {
		return nil, err
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := f.ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.pass(h, c, to)
			}()
		}
	}()
	return f, nil
}

// pass copies both ways between c and a new connection to to (dialled in the forwarder's namespace), through
// plain readers: user space, as a TURN relay copies.
func (f *forwarder) pass(h *nslab.Host, c net.Conn, to netip.AddrPort) {
	defer c.Close()
	var up net.Conn
	if err := h.Do(func() (err error) {
		up, err = net.DialTimeout("tcp4", to.String(), 10*time.Second)
		return err
	}); err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{up})
		_ = c.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(struct{ io.Writer }{up}, struct{ io.Reader }{c})
	_ = up.(*net.TCPConn).CloseWrite()
	<-done
}

func (f *forwarder) Close() {
	f.ln.Close()
	f.wg.Wait()
}

// command is p2phttp args in h's namespace, meeting through srv.
func (b *bench) command(ctx context.Context, h *nslab.Host, srv server, args ...string) *exec.Cmd {
	args = append(args, "--signal", "http://"+srv.http, "--stun", srv.stun)
	cmd := h.Command(ctx, b.cfg.p2phttp, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// startSignal runs a signalling server in the public namespace and waits until it accepts.
func (b *bench) startSignal(ctx context.Context, lab *nslab.Lab, srv server) (stop func(), err error) {
	args := append([]string{"signal", "--http", srv.http, "--stun", srv.stun}, srv.extra...)
	cmd := lab.Public.Command(ctx, b.cfg.p2phttp, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	if err := lab.Public.WaitAccepting(srv.http, 20*time.Second); err != nil {
		stop()
		return nil, fmt.Errorf("signalling server %s not accepting: %v: %s", srv.http, err, stderr.String())
	}
	return stop, nil
}

// lineWatch collects a process's stderr and notes when the first line matching re arrived.
type lineWatch struct {
	re   *regexp.Regexp
	mu   sync.Mutex
	buf  bytes.Buffer
	at   time.Time
	line string
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.buf.Write(p)
	if w.at.IsZero() {
		sc := bufio.NewScanner(bytes.NewReader(w.buf.Bytes()))
		for sc.Scan() {
			if w.re.MatchString(sc.Text()) {
				w.at, w.line = now, sc.Text()
				break
			}
		}
	}
	return len(p), nil
}

func (w *lineWatch) first() (time.Time, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at, w.line
}

func (w *lineWatch) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(w.buf.String())
}

func median[T time.Duration | float64](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func durStats(v []time.Duration) string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("%v [%v-%v]", r(median(v)), r(slices.Min(v)), r(slices.Max(v)))
}

func floatStats(v []float64) string {
	return fmt.Sprintf("%.2f [%.2f-%.2f]", median(v), slices.Min(v), slices.Max(v))
}

func routeCounts(m map[string]int) string {
	var parts []string
	for _, k := range []string{"relay", "direct"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

func defaultCC() string {
	b, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	return strings.TrimSpace(string(b))
}
