// Command signalload measures the signalling server (package
// signal/signalserver) on loopback, in one run:
//
//   - for each store set-up (-setups: the in-memory server, and 1, 2 and 4
//     instances sharing one Redis), it parks -peers hosts waiting for guests,
//     spread over the instances, and reports the servers' memory per waiting
//     peer; then a guest meets each host, through another instance than its
//     host's where there is one, and it reports meetings per second;
//   - the flood (-flood): -flood-addrs source addresses from 127.0.0.0/8 try to
//     park -flood-polls long-polls and keep them parked (re-posting when
//     answered, retrying when refused), against one in-memory server with
//     the default limits, while -real real meetings (host and guest each from
//     an address of their own) are attempted; it reports how many succeeded
//     and what the limits refused.
//
// Run it from the repository root (it needs redis-server for the Redis
// set-ups, and starts its own on a free loopback port):
//
//	go run ./bench/signalload                          # 2,000 waiting peers per set-up, and the flood
//	go run ./bench/signalload -peers 10000 -setups redis2 -flood=false
//
// Each instance runs in a child process (this program re-executed with
// -serve), so the load generator's own memory is not counted. Memory is read
// in the children after a GC, as the delta of the Go runtime's memory in use
// (runtime/metrics: /memory/classes/total minus heap/released and heap/free:
// live objects, goroutine stacks, runtime metadata) and of VmRSS (which also
// holds freed heap the runtime keeps) from a baseline taken before the peers
// connect, summed over the instances. Kernel socket memory is not counted. Redis's own memory (INFO memory, used_memory) is reported
// separately. The throughput set-ups relax the per-client limits (every
// peer comes from 127.0.0.1); the flood runs with the defaults. The program
// raises RLIMIT_NOFILE to its hard limit.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

func main() {
	peers := flag.Int("peers", 2000, "hosts parked waiting at once per set-up (= meetings per set-up)")
	conns := flag.Int("conns", 32, "guests posting at once")
	setups := flag.String("setups", "memory,redis1,redis2,redis4", "comma-separated set-ups: memory, or redisN (N instances on one Redis)")
	flood := flag.Bool("flood", true, "run the flood scenario")
	floodAddrs := flag.Int("flood-addrs", 600, "flood: attacker source addresses (127.10.0.0/16)")
	floodPolls := flag.Int("flood-polls", 10000, "flood: long-polls the attackers try to keep parked")
	floodFor := flag.Duration("flood-build", 15*time.Second, "flood: how long the attack runs before the real meetings start (it goes on until they end)")
	real := flag.Int("real", 100, "flood: real meetings attempted during the attack")
	serve := flag.String("serve", "", "internal: run an instance on this store (memory or a redis:// URL)")
	relaxed := flag.Bool("relaxed", true, "internal: with -serve, lift the per-client limits")
	flag.Parse()
	raiseFileLimit()
	if *serve != "" {
		runInstance(*serve, *relaxed, *peers)
		return
	}
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	fmt.Printf("signalload: %d waiting peers per set-up, %d guests at once, GOMAXPROCS %d, NumCPU %d, RLIMIT_NOFILE %d\n",
		*peers, *conns, runtime.GOMAXPROCS(0), runtime.NumCPU(), lim.Cur)
	fmt.Printf("%-8s %9s %10s %14s %12s %14s\n", "set-up", "instances", "meets/s", "in use/peer", "RSS/peer", "redis/peer")
	for _, s := range strings.Split(*setups, ",") {
		n := 0
		if s != "memory" {
			var err error
			if n, err = strconv.Atoi(strings.TrimPrefix(s, "redis")); err != nil || n < 1 || !strings.HasPrefix(s, "redis") {
				log.Fatalf("set-up %q: want memory or redisN", s)
			}
		}
		r, err := runSetup(n, *peers, *conns)
		if err != nil {
			log.Fatalf("%s: %v", s, err)
		}
		redisPer := "-"
		if n > 0 {
			redisPer = fmt.Sprintf("%.0f B", r.redisPerPeer)
		}
		fmt.Printf("%-8s %9d %10.0f %12.0f B %10.0f B %14s\n", s, max(n, 1), r.meetsPerSec, r.inUsePerPeer, r.rssPerPeer, redisPer)
	}
	if *flood {
		if err := runFlood(*floodAddrs, *floodPolls, *floodFor, *real); err != nil {
			log.Fatalf("flood: %v", err)
		}
	}
}

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard limit.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Fatal(err)
	}
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// runInstance is a child: a server on 127.0.0.1:0 that prints its address,
// then answers "mem" lines on stdin until stdin ends.
func runInstance(store string, relaxed bool, peers int) {
	cfg := signalserver.Config{}
	if relaxed {
		cfg = signalserver.Config{
			PollWait: 10 * time.Minute, RatePerIP: -1, RoomRatePerIP: -1,
			MaxParked: 4*peers + 1000, MaxParkedPerIP: 4*peers + 1000, MaxParkedPerIPv6Net: 4*peers + 1000,
			MaxRecords: 8*peers + 1000,
		}
	}
	if store != "memory" {
		st, err := signalserver.NewRedisStore(context.Background(), store, nil)
		if err != nil {
			log.Fatal(err)
		}
		cfg.Store = st
	}
	s := signalserver.New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	fmt.Printf("listening %s\n", l.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "mem" {
			inUse, rss := readMem()
			fmt.Printf("mem %d %d\n", inUse, rss)
		}
	}
	cancel()
	<-done
}

// readMem returns the Go runtime's memory in use (retained minus free heap
// spans: live objects, goroutine stacks, runtime metadata) and VmRSS.
func readMem() (inUse, rss int64) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	inUse = int64(s[0].Value.Uint64() - s[1].Value.Uint64() - s[2].Value.Uint64())
	status, _ := os.ReadFile("/proc/self/status")
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb << 10
		}
	}
	return inUse, rss
}

// instance is a child process seen from the load generator.
type instance struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startInstance(store string, relaxed bool, peers int) (*instance, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", store, "-relaxed="+strconv.FormatBool(relaxed), "-peers", strconv.Itoa(peers))
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &instance{cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	if !c.out.Scan() {
		return nil, errors.New("instance exited")
	}
	c.addr = strings.TrimPrefix(c.out.Text(), "listening ")
	return c, nil
}

func (c *instance) mem() (inUse, rss int64, err error) {
	fmt.Fprintln(c.in, "mem")
	if !c.out.Scan() {
		return 0, 0, errors.New("instance exited")
	}
	_, err = fmt.Sscanf(c.out.Text(), "mem %d %d", &inUse, &rss)
	return inUse, rss, err
}

func (c *instance) stop() {
	c.in.Close()
	c.cmd.Wait()
}

// redisServer is a redis-server of the benchmark's own.
type redisServer struct {
	cmd  *exec.Cmd
	addr string
	dir  string
}

func startRedis() (*redisServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir, err := os.MkdirTemp("", "signalload-redis")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server (apt-get install redis-server): %w", err)
	}
	r := &redisServer{cmd: cmd, addr: addr, dir: dir}
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return r, nil
		}
		if i > 500 {
			r.stop()
			return nil, errors.New("redis-server did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// usedMemory is Redis's used_memory (INFO memory), over a raw RESP exchange.
func (r *redisServer) usedMemory() int64 {
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		return 0
	}
	defer c.Close()
	fmt.Fprint(c, "*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n")
	br := bufio.NewReader(c)
	head, _ := br.ReadString('\n')
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	body := make([]byte, n)
	io.ReadFull(br, body)
	for line := range strings.SplitSeq(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			m, _ := strconv.ParseInt(v, 10, 64)
			return m
		}
	}
	return 0
}

func (r *redisServer) stop() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
	os.RemoveAll(r.dir)
}

type setupResult struct {
	meetsPerSec, inUsePerPeer, rssPerPeer, redisPerPeer float64
}

// runSetup measures one set-up: n instances on one Redis, or n == 0 for the
// in-memory server.
func runSetup(n, peers, conns int) (setupResult, error) {
	if peers > 99999 {
		return setupResult{}, errors.New("at most 99999 peers (one nameplate each)")
	}
	store := "memory"
	var rs *redisServer
	if n > 0 {
		var err error
		if rs, err = startRedis(); err != nil {
			return setupResult{}, err
		}
		defer rs.stop()
		store = "redis://" + rs.addr + "/0"
	}
	var insts []*instance
	defer func() {
		for _, in := range insts {
			in.stop()
		}
	}()
	for range max(n, 1) {
		in, err := startInstance(store, true, peers)
		if err != nil {
			return setupResult{}, err
		}
		insts = append(insts, in)
	}
	var res setupResult
	base := make([][2]int64, len(insts))
	for i, in := range insts {
		r, s, err := in.mem()
		if err != nil {
			return res, err
		}
		base[i] = [2]int64{r, s}
	}
	var redisBase int64
	if rs != nil {
		redisBase = rs.usedMemory()
	}

	// Park a host per nameplate, each on a connection of its own.
	hosts := make([]net.Conn, peers)
	defer func() {
		for _, c := range hosts {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := parallel(peers, 64, func(i int) error {
		c, err := net.Dial("tcp", insts[i%len(insts)].addr)
		if err != nil {
			return err
		}
		hosts[i] = c
		return writePost(c, signal.ExpandPath(signal.HostPath, strconv.Itoa(i+1)), signal.HostRequest{Version: signal.Version, PeerID: peerID(1, i)})
	}); err != nil {
		return res, fmt.Errorf("parking hosts: %w", err)
	}
	if err := waitParked(insts, peers); err != nil {
		return res, err
	}
	for i, in := range insts {
		r, s, err := in.mem()
		if err != nil {
			return res, err
		}
		res.inUsePerPeer += float64(r-base[i][0]) / float64(peers)
		res.rssPerPeer += float64(s-base[i][1]) / float64(peers)
	}
	if rs != nil {
		res.redisPerPeer = float64(rs.usedMemory()-redisBase) / float64(peers)
	}

	// Meet: a guest per host, through the next instance.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	start := time.Now()
	hostErrs := make(chan error, peers)
	for i, c := range hosts {
		go func() {
			c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				io.Copy(io.Discard, res.Body)
				if res.StatusCode != http.StatusOK {
					err = fmt.Errorf("host %d: status %d", i, res.StatusCode)
				}
			}
			hostErrs <- err
		}()
	}
	if err := parallel(peers, conns, func(i int) error {
		base := "http://" + insts[(i+1)%len(insts)].addr
		r, err := postJSON(hc, base+signal.ExpandPath(signal.GuestPath, strconv.Itoa(i+1)), signal.GuestRequest{Version: signal.Version, PeerID: peerID(2, i)})
		if err == nil && r != http.StatusOK {
			err = fmt.Errorf("guest %d: status %d", i, r)
		}
		return err
	}); err != nil {
		return res, err
	}
	for range peers {
		if err := <-hostErrs; err != nil {
			return res, err
		}
	}
	res.meetsPerSec = float64(peers) / time.Since(start).Seconds()
	return res, nil
}

func peerID(kind, i int) string { return fmt.Sprintf("%08x%024x", kind, i) }

// parallel runs fn(0..n-1) on k goroutines; the first error wins.
func parallel(n, k int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range k {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func writePost(c net.Conn, path string, body any) error {
	b, _ := json.Marshal(body)
	_, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: load\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(b), b)
	return err
}

func postJSON(hc *http.Client, url string, body any) (int, error) {
	b, _ := json.Marshal(body)
	res, err := hc.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// waitParked waits until the instances together hold n parked polls.
func waitParked(insts []*instance, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		total := 0
		for _, in := range insts {
			total += int(scrape(in.addr, "p2phttp_signal_parked_polls"))
		}
		if total >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d polls parked", total, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads one sample from an instance's /metrics.
func scrape(addr, sample string) float64 {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// dialFrom dials addr from a loopback source address of its own.
func dialFrom(src net.IP, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// runFlood is the attack on an in-memory server with the default limits.
func runFlood(addrs, polls int, dur time.Duration, real int) error {
	in, err := startInstance("memory", false, 0)
	if err != nil {
		return err
	}
	defer in.stop()
	fmt.Printf("== flood: %d source addresses keep trying to park %d long-polls (default limits, in-memory server); after %v, %d real meetings\n",
		addrs, polls, dur, real)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var attempts, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range polls {
		src := net.IPv4(127, 10, byte(i%addrs/250), byte(i%addrs%250+1))
		wg.Go(func() {
			for ctx.Err() == nil {
				attempts.Add(1)
				c, err := dialFrom(src, in.addr)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				writePost(c, signal.ExpandPath(signal.GuestPath, strconv.Itoa(50000+rand.IntN(40000))),
					signal.GuestRequest{Version: signal.Version, PeerID: signal.NewPeerID()})
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				stop()
				c.Close()
				if err == nil && res.StatusCode >= 400 {
					refused.Add(1)
					time.Sleep(500 * time.Millisecond) // as a persistent attacker would: retry soon
				}
			}
		})
	}
	time.Sleep(dur) // let the flood build up
	parkedAtStart := scrape(in.addr, "p2phttp_signal_parked_polls")
	var ok atomic.Int64
	start := time.Now()
	parallel(real, 10, func(k int) error {
		if meetOnce(in.addr, k) == nil {
			ok.Add(1)
		}
		return nil
	})
	took := time.Since(start)
	parkedAfter := scrape(in.addr, "p2phttp_signal_parked_polls")
	cancel()
	wg.Wait()
	fmt.Printf("attacker: %d requests, %d refused; parked polls when the real meetings began %.0f, after %.0f\n",
		attempts.Load(), refused.Load(), parkedAtStart, parkedAfter)
	for _, r := range []string{"client_parked", "max_parked", "rate_limited", "room_rate", "nameplate_full"} {
		fmt.Printf("  refusals %-15s %.0f\n", r, scrape(in.addr, `p2phttp_signal_refusals_total{reason="`+r+`"}`))
	}
	fmt.Printf("real meetings: %d of %d succeeded during the flood (in %v)\n", ok.Load(), real, took.Round(time.Millisecond))
	return nil
}

// meetOnce has real peer k (host and guest on addresses of their own) meet.
func meetOnce(addr string, k int) error {
	hostIP := net.IPv4(127, 20, byte(k/250), byte(k%250+1))
	guestIP := net.IPv4(127, 21, byte(k/250), byte(k%250+1))
	np := strconv.Itoa(1000 + k)
	hc, err := dialFrom(hostIP, addr)
	if err != nil {
		return err
	}
	defer hc.Close()
	hc.SetDeadline(time.Now().Add(15 * time.Second))
	writePost(hc, signal.ExpandPath(signal.HostPath, np), signal.HostRequest{Version: signal.Version, PeerID: signal.NewPeerID()})
	hostRes := make(chan int, 1)
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(hc), nil)
		if err != nil {
			hostRes <- 0
			return
		}
		hostRes <- res.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	gc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) { return dialFrom(guestIP, a) }}}
	st, err := postJSON(gc, "http://"+addr+signal.ExpandPath(signal.GuestPath, np), signal.GuestRequest{Version: signal.Version, PeerID: signal.NewPeerID()})
	if err != nil || st != http.StatusOK {
		return fmt.Errorf("guest: %d %v", st, err)
	}
	if st := <-hostRes; st != http.StatusOK {
		return fmt.Errorf("host: %d", st)
	}
	return nil
}
