//go:build linux

// Command transportlab compares p2phttp's transport with kernel TCP and quic-go on the NAT lab's standard paths
// (internal/nslab.Paths): two peers behind port-restricted cone NATs, in network namespaces, with the path's
// impairments on their links. For every path it builds one lab and, in that lab, interleaving the systems and
// rotating their order each repetition, moves the same file from peer a to peer b with:
//
//   - p2phttp: `p2phttp serve --dir` on a and `p2phttp get` on b, meeting at a signalling server on the lab's
//     public network and punching through both NATs (the binary built from this module);
//   - tcp and tcp-cubic: one kernel TCP connection through a port forward on a's router, with the namespace's
//     default congestion control and with CUBIC (set per socket on both ends);
//   - quic: bench/quicperf, one quic-go stream, punching the same NATs after learning its address from the lab's
//     STUN server (the harness is the rendezvous: it hands each peer the other's address).
//
// Every receiver writes what it gets to its stdout, which the harness reads: a run's rate is bytes over the time
// from the first byte to the last as the harness saw them, its stall the longest wait between two arrivals, and
// its bytes must hash to the file's SHA-256. CPU time is the user + system time of the sending and receiving
// processes (wait4 rusage at exit) less what they had used when the first byte arrived (from /proc), so start-up,
// meeting and handshakes are not counted; the table gives it per GiB moved. A run that does not end within -timeout counts as unfinished, with
// the rate of what arrived.
//
// With -rr N it also times N sequential 100-byte request/response round trips of each -rr-systems system, in
// turn in every repetition (order rotated), in the same lab:
//
//   - like for like, over one raw stream of each transport (a 100-byte message and its 100-byte echo):
//     p2phttp-stream (bench/p2prr: the library's rendezvous.Meet and NewHost through the lab's signalling server,
//     then the session's first uTP stream), tcp-stream (one kernel TCP connection through a's port forward) and
//     quic-stream (bench/quicperf -rr: one quic-go stream);
//   - what a user of `p2phttp forward` sees, HTTP GETs of a 100-byte file over one kept-alive connection:
//     p2phttp-cli-dir (a local TCP connection to `forward` on b, one stream, `serve --dir` on a),
//     p2phttp-cli-proxy (the same with `serve --proxy` to an HTTP server on a's loopback) and tcp-http (the same
//     HTTP server over kernel TCP, through a's port forward).
//
// The stream systems are compared with tcp-stream, the HTTP ones with tcp-http. With -cpu-hog every path runs again with a busy loop pinned to each CPU and
// the sender and receiver pinned one per CPU beside them.
//
// It needs root, iproute2, nftables and taskset, and runs from the repository root:
//
//	go run ./bench/transportlab -reps 5                      # every path, 32 MiB
//	go run ./bench/transportlab -paths clean,lossy80 -reps 3 -cpu-hog -json runs.jsonl
//
// The table gives, per path and system: finished runs, MB/s (10^6 bytes/s) median and min-max, the per-run
// ratio to the better of the two kernel TCP runs of the same repetition and to quic-go's (median, min-max),
// CPU seconds per GiB, and the longest stall over all repetitions, marked ! when longer than two RTOs
// (taken as 2 x (path RTT + 200 ms, Linux's minimum RTO)).
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/p2phttp/p2phttp/internal/nslab"
)

// Names of the systems compared.
const (
	sysP2P      = "p2phttp"
	sysTCP      = "tcp"
	sysTCPCubic = "tcp-cubic"
	sysQUIC     = "quic"
)

var allSystems = []string{sysP2P, sysTCP, sysTCPCubic, sysQUIC}

// Names of the -rr systems: request/response over one raw stream, and HTTP through the CLI or over kernel TCP.
const (
	rrP2PStream = "p2phttp-stream"
	rrTCPStream = "tcp-stream"
	rrQUIC      = "quic-stream"
	rrCLIDir    = "p2phttp-cli-dir"
	rrCLIProxy  = "p2phttp-cli-proxy"
	rrTCPHTTP   = "tcp-http"
)

var allRRSystems = []string{rrP2PStream, rrTCPStream, rrQUIC, rrCLIDir, rrCLIProxy, rrTCPHTTP}

// rrBaseline is the kernel TCP system each -rr system is compared with.
func rrBaseline(sys string) string {
	switch sys {
	case rrP2PStream, rrTCPStream, rrQUIC:
		return rrTCPStream
	}
	return rrTCPHTTP
}

const (
	bigName   = "big.bin"
	smallName = "small.bin"
	smallSize = 100
	// Ports on peer a, forwarded by its router, for the kernel TCP baselines.
	tcpPort  = 9100
	httpPort = 9101
	echoPort = 9102
	// proxiedAddr is where `serve --proxy` finds its web server, on a's loopback.
	proxiedAddr = "127.0.0.1:9103"
)

// Where the lab's public namespace runs the signalling server and its STUN responder.
var (
	signalURL = "http://" + nslab.PublicAddr.String() + ":8080"
	stunAddr  = nslab.PublicAddr.String() + ":3478"
)

type config struct {
	paths    []nslab.Path
	systems  []string
	rrSys    []string
	reps     int
	size     int64
	timeout  time.Duration
	rr       int
	cpuHog   bool
	seed     uint64
	p2phttp  string
	quicperf string
	p2prr    string
	jsonOut  string
}

func main() {
	if len(os.Args) > 1 {
		if helper, ok := helpers[os.Args[1]]; ok {
			if err := helper(os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "transportlab %s: %v\n", os.Args[1], err)
				os.Exit(1)
			}
			return
		}
	}
	var c config
	var pathList, systemList, rrList string
	var mib int64
	flag.StringVar(&pathList, "paths", "", "comma-separated `NAMES` of paths to run (default all: "+strings.Join(pathNames(), ",")+")")
	flag.StringVar(&systemList, "systems", strings.Join(allSystems, ","), "comma-separated `SYSTEMS` to compare in transfers (empty: none)")
	flag.StringVar(&rrList, "rr-systems", strings.Join(allRRSystems, ","), "comma-separated `SYSTEMS` to time with -rr")
	flag.IntVar(&c.reps, "reps", 5, "repetitions of every system on every path")
	flag.Int64Var(&mib, "mib", 32, "MiB moved per run")
	flag.DurationVar(&c.timeout, "timeout", 2*time.Minute, "a transfer not finished after this long counts as unfinished")
	flag.IntVar(&c.rr, "rr", 200, "100-byte request/response round trips per repetition (0: none)")
	flag.BoolVar(&c.cpuHog, "cpu-hog", false, "run every path again with a busy loop pinned beside each peer")
	flag.Uint64Var(&c.seed, "seed", 0, "seed of the links' random impairments (0: random)")
	flag.StringVar(&c.p2phttp, "p2phttp", "", "p2phttp `BINARY` to run (default: build ./cmd/p2phttp)")
	flag.StringVar(&c.quicperf, "quicperf", "", "quicperf `BINARY` to run (default: build ./bench/quicperf)")
	flag.StringVar(&c.p2prr, "p2prr", "", "p2prr `BINARY` to run (default: build ./bench/p2prr)")
	flag.StringVar(&c.jsonOut, "json", "", "also write every run as a JSON line to `FILE`")
	flag.Parse()
	if err := c.parse(pathList, systemList, rrList, mib); err != nil {
		fmt.Fprintln(os.Stderr, "transportlab:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "transportlab:", err)
		os.Exit(1)
	}
}

func pathNames() []string {
	var names []string
	for _, p := range nslab.Paths() {
		names = append(names, p.Name)
	}
	return names
}

func (c *config) parse(pathList, systemList, rrList string, mib int64) error {
	c.paths = nslab.Paths()
	if pathList != "" {
		c.paths = nil
		for _, name := range strings.Split(pathList, ",") {
			p, err := nslab.PathByName(strings.TrimSpace(name))
			if err != nil {
				return fmt.Errorf("-paths: %w (have %s)", err, strings.Join(pathNames(), ", "))
			}
			c.paths = append(c.paths, p)
		}
	}
	var err error
	if c.systems, err = parseList("-systems", systemList, allSystems); err != nil {
		return err
	}
	if c.rrSys, err = parseList("-rr-systems", rrList, allRRSystems); err != nil {
		return err
	}
	switch {
	case c.reps < 1:
		return errors.New("-reps must be at least 1")
	case mib < 1 || mib > 4096:
		return errors.New("-mib must be 1-4096")
	case c.timeout <= 0:
		return errors.New("-timeout must be positive")
	case c.rr < 0:
		return errors.New("-rr must not be negative")
	case len(c.systems) == 0 && (c.rr == 0 || len(c.rrSys) == 0):
		return errors.New("nothing to run: -systems is empty and so is -rr or -rr-systems")
	}
	c.size = mib << 20
	return nil
}

// parseList splits a comma-separated list of names, each of which must be in known; an empty list is none.
func parseList(flagName, list string, known []string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(known, s) {
			return nil, fmt.Errorf("%s: unknown system %q (have %s)", flagName, s, strings.Join(known, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

func run(ctx context.Context, c config) error {
	if err := nslab.Available(); err != nil {
		return err
	}
	if _, err := exec.LookPath("taskset"); err != nil && c.cpuHog {
		return errors.New("-cpu-hog needs taskset (util-linux)")
	}
	tmp, err := os.MkdirTemp("", "transportlab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if c.p2phttp == "" {
		if c.p2phttp, err = build(ctx, tmp, "./cmd/p2phttp"); err != nil {
			return err
		}
	}
	if c.quicperf == "" {
		if c.quicperf, err = build(ctx, tmp, "./bench/quicperf"); err != nil {
			return err
		}
	}
	if c.p2prr == "" && c.rr > 0 && slices.Contains(c.rrSys, rrP2PStream) {
		if c.p2prr, err = build(ctx, tmp, "./bench/p2prr"); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	data := filepath.Join(tmp, "data")
	sum, err := writeData(data, c.size)
	if err != nil {
		return err
	}
	var jsonFile *os.File
	if c.jsonOut != "" {
		if jsonFile, err = os.Create(c.jsonOut); err != nil {
			return err
		}
		defer jsonFile.Close()
	}
	b := &bench{cfg: c, self: self, dataDir: data, sum: sum, json: jsonFile}
	fmt.Printf("transportlab: %d MiB per run, %d repetitions, systems %s; -rr %d of %s; kernel congestion controls: %s\n",
		c.size>>20, c.reps, strings.Join(c.systems, ", "), c.rr, strings.Join(c.rrSys, ", "), kernelCCs())
	var report []pathReport
	for _, p := range c.paths {
		variants := []bool{false}
		if c.cpuHog {
			variants = append(variants, true)
		}
		for _, hog := range variants {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			pr, err := b.runPath(ctx, p, hog)
			if err != nil {
				return fmt.Errorf("path %s: %w", pr.name, err)
			}
			report = append(report, pr)
			printPath(os.Stdout, pr)
		}
	}
	printSummary(os.Stdout, report)
	return nil
}

// build compiles a package of this module into dir.
func build(ctx context.Context, dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (run from the repository root, or pass the binary): %w\n%s", pkg, err, msg)
	}
	return out, nil
}

// writeData writes the served folder: a pseudo-random (incompressible) big file and a 100-byte one.
func writeData(dir string, size int64) ([sha256.Size]byte, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return [sha256.Size]byte{}, err
	}
	big := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{'l', 'a', 'b'}).Read(big)
	small := make([]byte, smallSize)
	_, _ = rand.NewChaCha8([32]byte{'r', 'r'}).Read(small)
	err := errors.Join(
		os.WriteFile(filepath.Join(dir, bigName), big, 0o644),
		os.WriteFile(filepath.Join(dir, smallName), small, 0o644))
	return sha256.Sum256(big), err
}

// kernelCCs says which TCP congestion controls this kernel offers and which is the default.
func kernelCCs() string {
	avail, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_available_congestion_control")
	def, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	return fmt.Sprintf("available %q, default %q", strings.TrimSpace(string(avail)), strings.TrimSpace(string(def)))
}
