// Command rendezvous measures the time from two peers starting to meet on loopback to the first HTTP response, with
// the breakdown by step (gather, signal, punch, first stream, first exchange), and a baseline in the same run: a
// fresh TCP connection and one net/http GET on loopback. Runs alternate between the two so that load on the machine
// hits both alike.
//
//	go run ./bench/rendezvous            # 20 runs
//	go run ./bench/rendezvous -n 50 -v   # more runs, log every step
//
// Each run meets twice: with a fresh room code, whose signal step includes the deliberately slow key derivation from
// the code (PBKDF2, see package signal; also measured on its own), and with one code re-used, whose keys are cached
// (as when p2phttp serve re-joins for the next peer).
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

	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
	"github.com/p2phttp/p2phttp/signal"
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

	srv, err := rendezvoustest.NewServer(signal.ServerConfig{RatePerIP: -1, Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	base, err := newBaseline()
	if err != nil {
		log.Fatal(err)
	}
	defer base.Close()

	var p2p, rejoin []sample
	var tcp, kdf []time.Duration
	sameCode := signal.NewCode()
	for i := range *n {
		s, err := meetAndFetch(srv, signal.NewCode(), logger)
		if err != nil {
			log.Fatalf("run %d: %v", i, err)
		}
		p2p = append(p2p, s)
		// The same code every time: its keys are derived once and cached, as when serve re-joins for the next peer.
		s, err = meetAndFetch(srv, sameCode, logger)
		if err != nil {
			log.Fatalf("re-join run %d: %v", i, err)
		}
		rejoin = append(rejoin, s)
		d, err := base.fetch()
		if err != nil {
			log.Fatalf("baseline run %d: %v", i, err)
		}
		tcp = append(tcp, d)
		t := time.Now()
		if _, err := signal.RoomID(signal.NewCode()); err != nil {
			log.Fatal(err)
		}
		kdf = append(kdf, time.Since(t))
	}

	fmt.Printf("runs: %d, loopback, GOMAXPROCS=%d\n", *n, runtime.GOMAXPROCS(0))
	fmt.Printf("%-42s %10s %10s %10s\n", "", "median", "min", "max")
	row := func(name string, ds []time.Duration) {
		fmt.Printf("%-42s %10s %10s %10s\n", name, round(median(ds)), round(slices.Min(ds)), round(slices.Max(ds)))
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
		row("  signal (join room, wait for peer)", pick(ss, func(s sample) time.Duration { return s.signal }))
		row("  punch", pick(ss, func(s sample) time.Duration { return s.punch }))
		row("  first stream", pick(ss, func(s sample) time.Duration { return s.stream }))
		row("  first HTTP exchange over symsock", pick(ss, func(s sample) time.Duration { return s.exchange }))
	}
	steps("p2p, fresh code: start to first response", p2p)
	row("  (code -> room ID KDF alone, one peer)", kdf)
	steps("p2p, code re-used (keys cached)", rejoin)
	row("baseline: TCP dial + net/http GET", tcp)
	total := func(ss []sample) time.Duration {
		return median(pick(ss, func(s sample) time.Duration { return s.total }))
	}
	fmt.Printf("ratio to baseline (medians): fresh code %.0fx, re-used code %.0fx\n",
		float64(total(p2p))/float64(median(tcp)), float64(total(rejoin))/float64(median(tcp)))
}

// meetAndFetch starts two peers with code and returns when peer A has B's first response.
func meetAndFetch(srv *rendezvoustest.Server, code string, logger *slog.Logger) (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfgA, cfgB := srv.Config(code), srv.Config(code)
	cfgA.Logger, cfgB.Logger = logger.With("peer", "A"), logger.With("peer", "B")

	start := time.Now()
	a, b, err := rendezvoustest.Pair(ctx, cfgA, cfgB)
	if err != nil {
		return sample{}, err
	}
	defer a.Close()
	defer b.Close()
	met := time.Since(start)

	served := make(chan error, 1)
	go func() { served <- answerOne(b.Stream()) }()
	res, err := askOne(a.Stream())
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
	r := a.Report()
	return sample{total: total, gather: r.Gather, signal: r.Signal, punch: r.Punch, stream: r.Stream,
		exchange: total - met}, nil
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
