// Command rendezvous measures the time from two peers starting to meet on loopback to the first HTTP response, with
// the breakdown by step (gather, signal, punch, first stream, first exchange), and a baseline in the same run: a
// fresh TCP connection and one net/http GET on loopback. Runs alternate between the two so that load on the machine
// hits both alike.
//
//	go run ./bench/rendezvous            # 20 runs
//	go run ./bench/rendezvous -n 50 -v   # more runs, log every step
//
// Each run meets twice: a fresh host (which picks a code, gathers and claims its nameplate) met by one guest, and a
// guest of a host that is already waiting (as each `p2phttp get` meets a running `p2phttp serve`). Both include the
// PAKE (P-256 SPAKE2), key confirmation and the encrypted candidates.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
	"github.com/p2phttp/p2phttp/symsock"
)

// sample is one run: the whole time and its parts, as peer A saw them.
type sample struct {
	total, gather, signal, punch, stream, exchange time.Duration
}

func main() {
	n := flag.Int("n", 20, "number of runs")
	verbose := flag.Bool("v", false, "log each step")
	flag.Parse()
	log.SetFlags(0)
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	scfg := rendezvoustest.Unlimited()
	scfg.Logger = logger
	srv, err := rendezvoustest.NewServer(scfg)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	waiting, err := newWaitingHost(srv, logger)
	if err != nil {
		log.Fatal(err)
	}
	defer waiting.Close()
	base, err := newBaseline()
	if err != nil {
		log.Fatal(err)
	}
	defer base.Close()

	var p2p, rejoin []sample
	var tcp []time.Duration
	for i := range *n {
		s, err := meetAndFetch(srv, logger)
		if err != nil {
			log.Fatalf("run %d: %v", i, err)
		}
		p2p = append(p2p, s)
		s, err = waiting.meetAndFetch(srv, logger)
		if err != nil {
			log.Fatalf("waiting-host run %d: %v", i, err)
		}
		rejoin = append(rejoin, s)
		d, err := base.fetch()
		if err != nil {
			log.Fatalf("baseline run %d: %v", i, err)
		}
		tcp = append(tcp, d)
	}

	fmt.Printf("runs: %d, loopback, GOMAXPROCS=%d\n", *n, runtime.GOMAXPROCS(0))
	fmt.Printf("%-50s %10s %10s %10s\n", "", "median", "min", "max")
	row := func(name string, ds []time.Duration) {
		fmt.Printf("%-50s %10s %10s %10s\n", name, round(median(ds)), round(slices.Min(ds)), round(slices.Max(ds)))
	}
	pick := func(ss []sample, f func(sample) time.Duration) []time.Duration {
		out := make([]time.Duration, len(ss))
		for i, s := range ss {
			out[i] = f(s)
		}
		return out
	}
	steps := func(title string, ss []sample) {
		row(title, pick(ss, func(s sample) time.Duration { return s.total }))
		row("  gather (bind, interfaces, STUN)", pick(ss, func(s sample) time.Duration { return s.gather }))
		row("  signal (nameplate, PAKE, confirm, candidates)", pick(ss, func(s sample) time.Duration { return s.signal }))
		row("  punch", pick(ss, func(s sample) time.Duration { return s.punch }))
		row("  first stream", pick(ss, func(s sample) time.Duration { return s.stream }))
		row("  first HTTP exchange over symsock", pick(ss, func(s sample) time.Duration { return s.exchange }))
	}
	steps("p2p, fresh host + guest: start to first response", p2p)
	steps("p2p, guest of a waiting host", rejoin)
	row("baseline: TCP dial + net/http GET", tcp)
	total := func(ss []sample) time.Duration {
		return median(pick(ss, func(s sample) time.Duration { return s.total }))
	}
	fmt.Printf("ratio to baseline (medians): fresh host %.0fx, waiting host %.0fx\n",
		float64(total(p2p))/float64(median(tcp)), float64(total(rejoin))/float64(median(tcp)))
}

// meetAndFetch starts a host and a guest and returns when the guest has the host's first response.
func meetAndFetch(srv *rendezvoustest.Server, logger *slog.Logger) (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfgH, cfgG := srv.Config(""), srv.Config("")
	cfgH.Logger, cfgG.Logger = logger.With("peer", "host"), logger.With("peer", "guest")

	start := time.Now()
	host, h, g, err := rendezvoustest.Pair(ctx, cfgH, cfgG)
	if err != nil {
		return sample{}, err
	}
	defer host.Close()
	defer g.Close()
	return exchange(start, h, g)
}

// exchange has guest g ask host session h for /ping and returns the sample of g's meeting started at start.
func exchange(start time.Time, h, g *rendezvous.Session) (sample, error) {
	met := time.Since(start)
	served := make(chan error, 1)
	go func() { served <- answerOne(h.Stream()) }()
	res, err := askOne(g.Stream())
	if err != nil {
		return sample{}, err
	}
	total := time.Since(start)
	if err := <-served; err != nil {
		return sample{}, err
	}
	if res.Status != http.StatusOK || string(res.Body) != "pong" {
		return sample{}, fmt.Errorf("unexpected response %d %q", res.Status, res.Body)
	}
	r := g.Report()
	return sample{total: total, gather: r.Gather, signal: r.Signal, punch: r.Punch, stream: r.Stream,
		exchange: total - met}, nil
}

// waitingHost is a host that has been waiting for guests since the start.
type waitingHost struct{ *rendezvous.Host }

func newWaitingHost(srv *rendezvoustest.Server, logger *slog.Logger) (*waitingHost, error) {
	cfg := srv.Config("")
	cfg.Logger = logger.With("peer", "waiting-host")
	h, err := rendezvous.NewHost(context.Background(), cfg)
	return &waitingHost{h}, err
}

// meetAndFetch meets the waiting host with a fresh guest.
func (w *waitingHost) meetAndFetch(srv *rendezvoustest.Server, logger *slog.Logger) (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := srv.Config(w.Code())
	cfg.Logger = logger.With("peer", "guest")
	start := time.Now()
	type accepted struct {
		s   *rendezvous.Session
		err error
	}
	ch := make(chan accepted, 1)
	go func() { s, err := w.Accept(ctx); ch <- accepted{s, err} }()
	g, err := rendezvous.Meet(ctx, cfg)
	if err != nil {
		return sample{}, err
	}
	defer g.Close()
	a := <-ch
	if a.err != nil {
		return sample{}, a.err
	}
	defer a.s.Close()
	return exchange(start, a.s, g)
}

// askOne writes a request first (so this socket is the client) and reads the whole response.
func askOne(c net.Conn) (*symsock.Response, error) {
	s := symsock.New(c)
	if err := s.WriteRequest(&symsock.Request{Method: "GET", Target: "/ping", Header: http.Header{"Host": {"peer"}}}); err != nil {
		return nil, err
	}
	var res symsock.Response
	if err := s.ReadResponse(&res); err != nil {
		return nil, err
	}
	for s.ReadState() != symsock.ReadEmpty {
		if err := s.ReadSome(&res); err != nil {
			return nil, err
		}
	}
	return &res, nil
}

// answerOne reads a request first (so this socket is the server) and answers it.
func answerOne(c net.Conn) error {
	s := symsock.New(c)
	var req symsock.Request
	if err := s.ReadRequest(&req); err != nil {
		return err
	}
	for s.ReadState() != symsock.ReadFinished {
		if err := s.ReadSome(&req); err != nil {
			return err
		}
	}
	return s.WriteResponse(&symsock.Response{Status: http.StatusOK, Body: []byte("pong")})
}

// baseline is a net/http server on loopback TCP; fetch dials a fresh connection for each GET.
type baseline struct {
	srv *http.Server
	url string
}

func newBaseline() (*baseline, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pong")
	})}
	go srv.Serve(ln)
	return &baseline{srv: srv, url: "http://" + ln.Addr().String() + "/ping"}, nil
}

func (b *baseline) fetch() (time.Duration, error) {
	start := time.Now()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(b.url)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "pong" {
		return 0, fmt.Errorf("baseline: %q, %v", body, err)
	}
	return time.Since(start), nil
}

func (b *baseline) Close() { b.srv.Close() }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
