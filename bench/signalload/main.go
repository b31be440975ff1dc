// Command signalload measures the signalling server (package signal) under
// load on loopback: it holds -peers long-polls waiting at once (default
// 10,000), reports the server's memory per waiting peer, then completes every
// one of those meetings and reports meets per second.
//
// Run it from the repository root:
//
//	go run ./bench/signalload                    # 10,000 waiting peers, 3 rounds
//	go run ./bench/signalload -peers 2000 -rounds 1
//
// The server runs in a child process (this program re-executed with -serve),
// so the load generator's own memory and goroutines are not counted. Memory
// is read in the child after a GC, as a delta from a baseline taken after a
// warm-up and before the peers connect:
//
//   - retained: Go runtime memory from runtime/metrics (/memory/classes/total
//     minus heap/released): heap, free-but-unreleased heap, goroutine stacks,
//     runtime metadata;
//   - in use: retained minus free heap spans (live objects, stacks, metadata);
//   - RSS: VmRSS of the child from /proc.
//
// Kernel memory (socket structures, buffers) is not process memory and is not
// included; the program prints the machine-wide slab growth as an indication.
//
// A meeting is timed from the first second-peer request to the moment both
// peers hold their answer: the second peer's from its own request, the first
// peer's written by the server to its parked connection. Second peers post
// over -conns keep-alive connections. The program raises RLIMIT_NOFILE to its
// hard limit (Go only does that for the soft limit at start-up since 1.19;
// the child inherits it), and needs about -peers + -conns + 100 descriptors
// in each process.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sig "github.com/p2phttp/p2phttp/signal"
)

func main() {
	peers := flag.Int("peers", 10000, "long-polls held waiting at once (= meetings per round)")
	conns := flag.Int("conns", 64, "keep-alive connections the second peers post over")
	rounds := flag.Int("rounds", 3, "park-then-meet rounds")
	serve := flag.Bool("serve", false, "internal: run the server (child process)")
	profile := flag.String("cpuprofile", "", "write the server's CPU profile to this file")
	baseline := flag.Bool("baseline", true, "also measure the baseline: the same server with hijacking hidden, so waiting peers are held by net/http in their handlers")
	handlerWait := flag.Bool("handler-wait", false, "internal: with -serve, hide http.Hijacker from the server")
	flag.Parse()
	raiseFileLimit()
	if *serve {
		runServer(*peers, *profile, *handlerWait)
		return
	}
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	fmt.Printf("signalload: %d waiting peers, %d keep-alive conns for second peers, %d rounds, GOMAXPROCS %d, NumCPU %d, RLIMIT_NOFILE %d/%d\n",
		*peers, *conns, *rounds, runtime.GOMAXPROCS(0), runtime.NumCPU(), lim.Cur, lim.Max)
	if need := uint64(*peers + *conns + 100); lim.Cur < need {
		log.Fatalf("RLIMIT_NOFILE %d is under the %d descriptors needed; lower -peers", lim.Cur, need)
	}
	fmt.Println("== signal.Server (waiting long-polls parked on hijacked connections)")
	ours, err := runLoad(*peers, *conns, *rounds, *profile, false)
	if err != nil {
		log.Fatal(err)
	}
	if !*baseline {
		return
	}
	fmt.Println("== baseline: the same server with http.Hijacker hidden (net/http holds each waiting request)")
	base, err := runLoad(*peers, *conns, *rounds, "", true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ratio signal.Server / baseline: meets/s %.2fx; memory per waiting peer: retained %.2fx, in use %.2fx, RSS %.2fx\n",
		ours.meetsPerSec/base.meetsPerSec, ours.retained/base.retained, ours.inUse/base.inUse, ours.rss/base.rss)
}

// summary holds the medians over the rounds of one server variant.
type summary struct {
	meetsPerSec, retained, inUse, rss float64 // memory: bytes per waiting peer
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard limit.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Fatal(err)
	}
}

// runServer is the child: a signal.Server on 127.0.0.1:0 that prints its
// address, then answers "mem" lines on stdin with a memory report, until
// stdin ends.
func runServer(peers int, profile string, handlerWait bool) {
	s := sig.NewServer(sig.ServerConfig{
		MaxRooms:   2*peers + 1000,
		MaxWaiting: 2*peers + 1000,
		RatePerIP:  -1, // every peer comes from 127.0.0.1
		PollWait:   10 * time.Minute,
		RoomTTL:    time.Hour,
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	if handlerWait {
		hs := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s.ServeHTTP(struct{ http.ResponseWriter }{w}, r) // hides Hijack
			}),
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		}
		hs.RegisterOnShutdown(func() { s.Close() })
		go func() {
			<-ctx.Done()
			served <- hs.Shutdown(context.Background())
		}()
		go hs.Serve(l)
	} else {
		go func() { served <- s.Serve(ctx, l) }()
	}
	fmt.Printf("listening %s\n", l.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "mem":
			m := readMem()
			fmt.Printf("mem %d %d %d %d\n", m.retained, m.inUse, m.rss, m.goroutines)
		case "cpu":
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			fmt.Printf("cpu %d\n", time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
		}
	}
	stop()
	if err := <-served; err != nil {
		log.Print(err)
	}
}

type memReport struct {
	retained, inUse, rss, goroutines int64
}

func readMem() memReport {
	runtime.GC()
	s := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/sched/goroutines:goroutines"},
	}
	metrics.Read(s)
	retained := int64(s[0].Value.Uint64() - s[1].Value.Uint64())
	m := memReport{retained: retained, inUse: retained - int64(s[2].Value.Uint64()), goroutines: int64(s[3].Value.Uint64())}
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			m.rss = kb << 10
		}
	}
	return m
}

// slabBytes is the kernel's slab memory (/proc/meminfo), where socket
// structures live; it is machine-wide.
func slabBytes() int64 {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Slab:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// child is the server process seen from the load generator.
type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startChild(peers int, profile string, handlerWait bool) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", "-peers", strconv.Itoa(peers), "-cpuprofile", profile, "-handler-wait="+strconv.FormatBool(handlerWait))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	if !c.out.Scan() {
		return nil, errors.New("server child exited")
	}
	c.addr = strings.TrimPrefix(c.out.Text(), "listening ")
	return c, nil
}

func (c *child) mem() (memReport, error) {
	fmt.Fprintln(c.in, "mem")
	if !c.out.Scan() {
		return memReport{}, errors.New("server child exited")
	}
	var m memReport
	_, err := fmt.Sscanf(c.out.Text(), "mem %d %d %d %d", &m.retained, &m.inUse, &m.rss, &m.goroutines)
	return m, err
}

// cpu returns the child's CPU time so far (user + system).
func (c *child) cpu() (time.Duration, error) {
	fmt.Fprintln(c.in, "cpu")
	if !c.out.Scan() {
		return 0, errors.New("server child exited")
	}
	var d time.Duration
	_, err := fmt.Sscanf(c.out.Text(), "cpu %d", &d)
	return d, err
}

func (c *child) stop() {
	c.in.Close()
	c.cmd.Wait()
}

func offer(n int) string {
	return fmt.Sprintf(`{"version":1,"peer_id":"%032x","candidates":[{"kind":"host","addr":"127.0.0.1:%d"}],"mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		n, 1024+n%60000)
}

func request(room int, peer int) []byte {
	body := offer(peer)
	return []byte(fmt.Sprintf("POST /v1/rooms/%064x HTTP/1.1\r\nHost: load\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		room, len(body), body))
}

// readAnswer reads one response and checks it is a 200.
func readAnswer(br *bufio.Reader) error {
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", res.StatusCode)
	}
	return err
}

// runLoad measures one server variant: each round runs in a fresh server
// child, so memory freed by an earlier round cannot hide in the baseline.
func runLoad(peers, conns, rounds int, profile string, handlerWait bool) (summary, error) {
	var rates, retained, inUse, rss []float64
	for r := 1; r <= rounds; r++ {
		c, err := startChild(peers, profile, handlerWait)
		if err != nil {
			return summary{}, err
		}
		res, err := measureRound(c, r, peers, conns)
		c.stop()
		if err != nil {
			return summary{}, fmt.Errorf("round %d: %w", r, err)
		}
		rates = append(rates, res.meetsPerSec)
		retained = append(retained, res.retained)
		inUse = append(inUse, res.inUse)
		rss = append(rss, res.rss)
	}
	sum := summary{meetsPerSec: median(rates), retained: median(retained), inUse: median(inUse), rss: median(rss)}
	fmt.Printf("median over %d rounds of %d: %.0f meets/s; per waiting peer: retained %.0f B, in use %.0f B, RSS %.0f B\n",
		rounds, peers, sum.meetsPerSec, sum.retained, sum.inUse, sum.rss)
	return sum, nil
}

func measureRound(c *child, r, peers, conns int) (summary, error) {
	// Warm up with a few meetings, so one-time allocations are in the baseline.
	room := 0
	if _, err := round(c.addr, &room, min(100, peers), conns); err != nil {
		return summary{}, fmt.Errorf("warm-up: %w", err)
	}
	base, err := c.mem()
	if err != nil {
		return summary{}, err
	}
	slabBefore := slabBytes()
	var sum summary
	var cpuBefore time.Duration
	res, err := round(c.addr, &room, peers, conns, func() error {
		held, err := c.mem()
		if err != nil {
			return err
		}
		per := func(a, b int64) float64 { return float64(a-b) / float64(peers) }
		sum.retained, sum.inUse, sum.rss = per(held.retained, base.retained), per(held.inUse, base.inUse), per(held.rss, base.rss)
		fmt.Printf("round %d (server pid %d): %d peers waiting; server memory per waiting peer: retained %.0f B, in use %.0f B, RSS %.0f B; goroutines %d -> %d\n",
			r, c.cmd.Process.Pid, peers, sum.retained, sum.inUse, sum.rss, base.goroutines, held.goroutines)
		fmt.Printf("  raw bytes: before retained %d in-use %d rss %d; waiting retained %d in-use %d rss %d\n",
			base.retained, base.inUse, base.rss, held.retained, held.inUse, held.rss)
		fmt.Printf("  kernel slab (machine-wide, so indicative; both ends of each connection): %+.0f B per waiting peer\n",
			float64(slabBytes()-slabBefore)/float64(peers))
		cpuBefore, err = c.cpu()
		return err
	})
	if err != nil {
		return summary{}, err
	}
	cpuAfter, err := c.cpu()
	if err != nil {
		return summary{}, err
	}
	sum.meetsPerSec = float64(peers) / res.meet.Seconds()
	fmt.Printf("round %d: parked %d in %v (%.0f joins/s); met %d in %v: %.0f meets/s; server CPU %.1f µs per meet\n",
		r, peers, res.park.Round(time.Millisecond), float64(peers)/res.park.Seconds(), peers, res.meet.Round(time.Millisecond),
		sum.meetsPerSec, float64((cpuAfter-cpuBefore).Microseconds())/float64(peers))
	return sum, nil
}

type roundResult struct{ park, meet time.Duration }

// round parks n first peers (one connection each), calls held (if any) once
// all are parked, then sends the n second peers over conns connections and
// waits until every peer has its answer.
func round(addr string, room *int, n, conns int, held ...func() error) (roundResult, error) {
	first := *room
	*room += n
	var res roundResult
	errs := make(chan error, 2*n+conns)
	var parked, answered sync.WaitGroup
	parked.Add(n)
	answered.Add(n)
	var parkedOK atomic.Int64

	start := time.Now()
	work := make(chan int)
	var dialers sync.WaitGroup
	for range conns {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for i := range work {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					errs <- err
					parked.Done()
					answered.Done()
					continue
				}
				if _, err := conn.Write(request(first+i, 2*(first+i)+2)); err != nil {
					errs <- err
				}
				parkedOK.Add(1)
				parked.Done()
				go func() {
					defer answered.Done()
					defer conn.Close()
					if err := readAnswer(bufio.NewReaderSize(conn, 1024)); err != nil {
						errs <- fmt.Errorf("first peer: %w", err)
					}
				}()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	dialers.Wait()
	parked.Wait()
	// Requests are written; wait until the server has parked them all.
	if err := waitWaiting(addr, n); err != nil {
		return res, err
	}
	res.park = time.Since(start)
	for _, f := range held {
		if err := f(); err != nil {
			return res, err
		}
	}

	start = time.Now()
	next := make(chan int, conns)
	var seconds sync.WaitGroup
	for range conns {
		seconds.Add(1)
		go func() {
			defer seconds.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				for range next {
				}
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			for i := range next {
				if _, err := conn.Write(request(first+i, 2*(first+i)+1)); err != nil {
					errs <- err
					continue
				}
				if err := readAnswer(br); err != nil {
					errs <- fmt.Errorf("second peer: %w", err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	seconds.Wait()
	answered.Wait()
	res.meet = time.Since(start)
	close(errs)
	if err, ok := <-errs; ok {
		return res, fmt.Errorf("%w (and %d more errors)", err, len(errs))
	}
	return res, nil
}

// waitWaiting polls the server's /metrics until n long-polls are parked.
func waitWaiting(addr string, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "p2phttp_signal_waiting_peers "); ok {
				if f, _ := strconv.ParseFloat(v, 64); int(f) == n {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server never reported %d waiting peers", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
