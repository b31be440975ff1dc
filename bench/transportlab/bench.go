//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/p2phttp/p2phttp/internal/meter"
	"github.com/p2phttp/p2phttp/internal/nslab"
	"github.com/p2phttp/p2phttp/internal/pingpong"
	"github.com/p2phttp/p2phttp/internal/syncbuf"
)

// Limits on the steps around a transfer, generous for a loaded machine.
const (
	signalReady  = 20 * time.Second
	connectLimit = 60 * time.Second // rendezvous, punching or TCP connect before the first byte
	stopGrace    = 5 * time.Second  // after SIGINT, before SIGKILL
)

type bench struct {
	cfg     config
	self    string // this program, for the helpers run inside the lab
	dataDir string
	sum     [sha256.Size]byte
	json    *os.File
}

// transfer is one run of one system.
type transfer struct {
	Path     string  `json:"path"`
	Hog      bool    `json:"cpu_hog"`
	System   string  `json:"system"`
	Rep      int     `json:"rep"`
	Finished bool    `json:"finished"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"` // first to last byte at the receiver
	Rate     float64 `json:"rate_mb_s"`
	CPU      float64 `json:"cpu_seconds"` // sender + receiver, user + system, whole processes
	// DataCPU is CPU from the first byte on: CPU minus what the processes had used when the first byte arrived
	// (start-up, meeting, key agreement, handshakes), so it is comparable across systems.
	DataCPU  float64 `json:"data_cpu_seconds"`
	MaxStall float64 `json:"max_stall_seconds"`
	CC       string  `json:"congestion_control,omitempty"`
	Err      string  `json:"error,omitempty"`
}

// roundTrips is one -rr measurement.
type roundTrips struct {
	Path   string `json:"path"`
	Hog    bool   `json:"cpu_hog"`
	System string `json:"system"`
	Rep    int    `json:"rep"`
	pingpong.Result
	Err string `json:"error,omitempty"`
}

type pathReport struct {
	name      string
	path      nslab.Path
	transfers []transfer
	rts       []roundTrips
	cc        string // the namespaces' default congestion control
}

// pin says which CPU each side runs on: -1 leaves it to the scheduler.
type pin struct{ sender, receiver int }

func (b *bench) runPath(ctx context.Context, p nslab.Path, hog bool) (pathReport, error) {
	pr := pathReport{name: p.Name, path: p}
	if hog {
		pr.name += "+hog"
	}
	fmt.Fprintf(os.Stderr, "== %s: %s\n", pr.name, p.Summary)
	lab, err := nslab.New(ctx, p.Config(b.cfg.seed))
	if err != nil {
		return pr, err
	}
	defer lab.Close()
	a, r := lab.Peer("a"), lab.Peer("b")
	for _, port := range []uint16{tcpPort, httpPort, echoPort} {
		if err := lab.Routers[0].ForwardTCP(ctx, port, netip.AddrPortFrom(a.Addr, port)); err != nil {
			return pr, err
		}
	}
	_ = a.Do(func() error {
		cc, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
		pr.cc = strings.TrimSpace(string(cc))
		return err
	})
	sig, err := b.startSignal(ctx, lab)
	if err != nil {
		return pr, err
	}
	defer sig.stop()
	cpus := pin{-1, -1}
	if hog {
		stopHogs, err := b.startHogs(ctx)
		if err != nil {
			return pr, err
		}
		defer stopHogs()
		cpus = pin{0, 1}
	}
	l := &runLab{bench: b, lab: lab, a: a, b: r, wan: lab.Routers[0].WAN, cpus: cpus}
	for rep := range b.cfg.reps {
		// Rotate the order each repetition, so no system always runs first (or right after another).
		for _, sys := range rotate(b.cfg.systems, rep) {
			t := l.transfer(ctx, sys)
			t.Path, t.Hog, t.Rep = pr.name, hog, rep
			b.emit(t)
			pr.transfers = append(pr.transfers, t)
			if ctx.Err() != nil {
				return pr, ctx.Err()
			}
		}
		if b.cfg.rr > 0 && len(b.cfg.rrSys) > 0 {
			for _, sys := range rotate(b.cfg.rrSys, rep) {
				rt := l.roundTrips(ctx, sys)
				rt.Path, rt.Hog, rt.Rep = pr.name, hog, rep
				b.emit(rt)
				pr.rts = append(pr.rts, rt)
			}
		}
	}
	return pr, nil
}

// rotate returns list rotated left by rep, so no system always runs first (or right after another); it does not
// modify list.
func rotate(list []string, rep int) []string {
	if len(list) == 0 {
		return nil
	}
	k := rep % len(list)
	return append(slices.Clone(list[k:]), list[:k]...)
}

func (b *bench) emit(v any) {
	line, _ := json.Marshal(v)
	fmt.Fprintf(os.Stderr, "   %s\n", line)
	if b.json != nil {
		_, _ = b.json.Write(append(line, '\n'))
	}
}

// startHogs runs one busy loop pinned to each of the first two CPUs.
func (b *bench) startHogs(ctx context.Context) (func(), error) {
	var hogs []*exec.Cmd
	stop := func() {
		for _, h := range hogs {
			_ = h.Process.Kill()
			_ = h.Wait()
		}
	}
	for cpu := range 2 {
		h := exec.CommandContext(ctx, "taskset", "-c", strconv.Itoa(cpu), b.self, "hog")
		if err := h.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("starting the CPU hog: %w", err)
		}
		hogs = append(hogs, h)
	}
	return stop, nil
}

// startSignal runs `p2phttp signal` in the public namespace and waits until its HTTP port answers.
func (b *bench) startSignal(ctx context.Context, lab *nslab.Lab) (*proc, error) {
	host := strings.TrimPrefix(signalURL, "http://")
	p, err := startProc(ctx, lab.Public, -1, b.cfg.p2phttp, "signal", "--http", host, "--stun", stunAddr)
	if err != nil {
		return nil, err
	}
	if err := lab.Public.WaitAccepting(host, signalReady); err != nil {
		p.stop()
		return nil, fmt.Errorf("signalling server not accepting within %v: %v: %s", signalReady, err, p.stderr.String())
	}
	return p, nil
}

// runLab is one built lab: peer a sends, peer b receives.
type runLab struct {
	*bench
	lab  *nslab.Lab
	a, b *nslab.Host
	wan  netip.Addr // a's router, where the TCP baselines connect
	cpus pin
}

// transfer moves the big file once with sys and measures it.
func (l *runLab) transfer(ctx context.Context, sys string) transfer {
	t := transfer{System: sys}
	ctx, cancel := context.WithTimeout(ctx, connectLimit+l.cfg.timeout)
	defer cancel()
	sender, receiver, err := l.start(ctx, sys, &t)
	if err != nil {
		t.Err = err.Error()
		return t
	}
	defer sender.stop()
	defer receiver.stop()
	m := meter.New()
	var before float64 // CPU the two processes had used when the first byte arrived
	var once sync.Once
	first := writerFunc(func(p []byte) (int, error) {
		once.Do(func() { before = sender.cpuSoFar() + receiver.cpuSoFar() })
		return len(p), nil
	})
	copied := make(chan error, 1)
	go func() { _, err := io.Copy(io.MultiWriter(first, m), receiver.stdout); copied <- err }()

	// The transfer limit runs from the first byte; before it, the connect limit.
	var copyErr error
	copyDone := false
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	connectBy := time.Now().Add(connectLimit)
wait:
	for {
		select {
		case copyErr = <-copied:
			copyDone = true
			break wait
		case <-ctx.Done():
			copyErr = ctx.Err()
			break wait
		case now := <-tick.C:
			s := m.Snapshot()
			if s.First.IsZero() && now.After(connectBy) {
				copyErr = fmt.Errorf("no byte within %v", connectLimit)
				break wait
			}
			if !s.First.IsZero() && now.Sub(s.First) > l.cfg.timeout {
				copyErr = fmt.Errorf("not finished within %v", l.cfg.timeout)
				break wait
			}
		}
	}
	s := m.Snapshot()
	if !copyDone {
		receiver.stop() // ends the copy
		<-copied
	}
	recvErr := receiver.wait()
	sender.stop()
	t.Bytes, t.Seconds, t.MaxStall = s.Bytes, s.Duration().Seconds(), s.MaxGap.Seconds()
	t.Rate = s.Rate() / 1e6
	t.CPU = sender.cpu() + receiver.cpu()
	if s.Bytes > 0 {
		t.DataCPU = max(t.CPU-before, 0) // before is read once the copy has begun; the copy has ended by now
	}
	switch {
	case copyErr != nil:
		t.Err = copyErr.Error()
	case recvErr != nil:
		t.Err = fmt.Sprintf("receiver: %v: %s", recvErr, lastLine(receiver.stderr.String()))
	case s.Bytes != l.cfg.size || s.SHA256 != l.sum:
		t.Err = fmt.Sprintf("got %d bytes hashing to %x, want %d bytes hashing to %x", s.Bytes, s.SHA256[:8], l.cfg.size, l.sum[:8])
	default:
		t.Finished = true
	}
	return t
}

// start launches the sender on a and the receiver on b for sys; the receiver's stdout is the data.
func (l *runLab) start(ctx context.Context, sys string, t *transfer) (sender, receiver *proc, err error) {
	defer func() {
		if err != nil && sender != nil {
			sender.stop()
		}
	}()
	big := filepath.Join(l.dataDir, bigName)
	switch sys {
	case sysP2P:
		code := fmt.Sprintf("%d-transportlab-%d", 100+rand.IntN(900), rand.Uint32())
		if sender, err = startProc(ctx, l.a, l.cpus.sender, l.cfg.p2phttp, "serve", "--signal", signalURL, "--stun", stunAddr, "--dir", l.dataDir, code); err != nil {
			return nil, nil, err
		}
		receiver, err = startProc(ctx, l.b, l.cpus.receiver, l.cfg.p2phttp, "get", "--signal", signalURL, "--stun", stunAddr, code, "/"+bigName)
		return sender, receiver, err
	case sysTCP, sysTCPCubic:
		cc := ""
		if sys == sysTCPCubic {
			cc = "cubic"
		}
		if sender, err = startProc(ctx, l.a, l.cpus.sender, l.self, "tcp-send", "-listen", fmt.Sprintf(":%d", tcpPort), "-file", big, "-cc", cc); err != nil {
			return nil, nil, err
		}
		var ready struct{ CC string }
		if err := sender.readJSONLine(&ready); err != nil {
			return sender, nil, fmt.Errorf("tcp-send: %w: %s", err, sender.stderr.String())
		}
		t.CC = ready.CC
		receiver, err = startProc(ctx, l.b, l.cpus.receiver, l.self, "tcp-recv", "-connect", netip.AddrPortFrom(l.wan, tcpPort).String(), "-cc", cc)
		return sender, receiver, err
	case sysQUIC:
		if sender, err = startProc(ctx, l.a, l.cpus.sender, l.cfg.quicperf, "-role", "send", "-stun", stunAddr, "-file", big); err != nil {
			return nil, nil, err
		}
		if receiver, err = startProc(ctx, l.b, l.cpus.receiver, l.cfg.quicperf, "-role", "recv", "-stun", stunAddr, "-o", "-"); err != nil {
			return sender, nil, err
		}
		// The rendezvous: each learns its public address by STUN; hand each the other's.
		var sm, rm struct{ Addr string }
		if err := sender.readJSONLine(&sm); err != nil {
			receiver.stop()
			return sender, nil, fmt.Errorf("quicperf send: %w: %s", err, sender.stderr.String())
		}
		if err := receiver.readStderrJSONLine(&rm); err != nil {
			receiver.stop()
			return sender, nil, fmt.Errorf("quicperf recv: %w: %s", err, receiver.stderr.String())
		}
		_, err1 := io.WriteString(sender.stdin, rm.Addr+"\n")
		_, err2 := io.WriteString(receiver.stdin, sm.Addr+"\n")
		if err := errors.Join(err1, err2); err != nil {
			receiver.stop()
			return sender, nil, err
		}
		return sender, receiver, nil
	}
	return nil, nil, fmt.Errorf("unknown system %q", sys)
}

// roundTrips times -rr round trips of sys (see the -rr systems in the package doc). The client runs on b, the
// server on a; every client prints one JSON line with a pingpong.Result.
func (l *runLab) roundTrips(ctx context.Context, sys string) roundTrips {
	rt := roundTrips{System: sys}
	ctx, cancel := context.WithTimeout(ctx, connectLimit+l.cfg.timeout)
	defer cancel()
	var procs []*proc
	defer func() {
		for _, p := range slices.Backward(procs) {
			p.stop()
		}
	}()
	client, err := l.startRR(ctx, sys, func(p *proc) { procs = append(procs, p) })
	if err != nil {
		rt.Err = err.Error()
		return rt
	}
	var res struct {
		Event, Error string
		pingpong.Result
	}
	for res.N == 0 {
		if err := client.readJSONLine(&res); err != nil {
			rt.Err = fmt.Sprintf("%v: %s", err, lastLine(client.stderr.String()))
			return rt
		}
		if res.Event == "error" {
			rt.Err = res.Error
			return rt
		}
	}
	rt.Result = res.Result
	return rt
}

// startRR starts the processes of one -rr run of sys, handing each to track (which stops them), and returns the
// client, whose report line is the result.
func (l *runLab) startRR(ctx context.Context, sys string, track func(*proc)) (*proc, error) {
	start := func(h *nslab.Host, cpu int, name string, args ...string) (*proc, error) {
		p, err := startProc(ctx, h, cpu, name, args...)
		if err == nil {
			track(p)
		}
		return p, err
	}
	// startReady starts a server on a and waits for its first JSON line, which it prints once it accepts.
	startReady := func(name string, args ...string) (*proc, error) {
		p, err := start(l.a, l.cpus.sender, name, args...)
		if err != nil {
			return nil, err
		}
		var ready struct{}
		if err := p.readJSONLine(&ready); err != nil {
			return nil, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), args[0], err, p.stderr.String())
		}
		return p, nil
	}
	n, size := strconv.Itoa(l.cfg.rr), strconv.Itoa(smallSize)
	code := fmt.Sprintf("%d-transportlab-rr-%d", 100+rand.IntN(900), rand.Uint32())
	peer := []string{"--signal", signalURL, "--stun", stunAddr, code}
	httpClient := func(url string) (*proc, error) {
		return start(l.b, l.cpus.receiver, l.self, "rr", "-url", url, "-n", n, "-size", size,
			"-connect-timeout", connectLimit.String())
	}
	switch sys {
	case rrP2PStream:
		if _, err := startReady(l.cfg.p2prr, "-role", "host", "-signal", signalURL, "-stun", stunAddr, "-code", code); err != nil {
			return nil, err
		}
		return start(l.b, l.cpus.receiver, l.cfg.p2prr, "-role", "guest", "-signal", signalURL, "-stun", stunAddr,
			"-code", code, "-n", n, "-size", size)
	case rrTCPStream:
		if _, err := startReady(l.self, "tcp-echo", "-listen", fmt.Sprintf(":%d", echoPort), "-size", size); err != nil {
			return nil, err
		}
		return start(l.b, l.cpus.receiver, l.self, "tcp-rr", "-connect", netip.AddrPortFrom(l.wan, echoPort).String(),
			"-n", n, "-size", size)
	case rrQUIC:
		sender, err := start(l.a, l.cpus.sender, l.cfg.quicperf, "-role", "send", "-stun", stunAddr, "-rr", n, "-size", size)
		if err != nil {
			return nil, err
		}
		client, err := start(l.b, l.cpus.receiver, l.cfg.quicperf, "-role", "recv", "-stun", stunAddr, "-rr", n, "-size", size)
		if err != nil {
			return nil, err
		}
		// The rendezvous: each learns its public address by STUN; hand each the other's.
		var sm, rm struct{ Addr string }
		if err := errors.Join(sender.readJSONLine(&sm), client.readJSONLine(&rm)); err != nil {
			return nil, fmt.Errorf("quicperf: %w: %s %s", err, sender.stderr.String(), client.stderr.String())
		}
		_, err1 := io.WriteString(sender.stdin, rm.Addr+"\n")
		_, err2 := io.WriteString(client.stdin, sm.Addr+"\n")
		return client, errors.Join(err1, err2)
	case rrCLIDir, rrCLIProxy:
		serve := []string{"serve", "--dir", l.dataDir}
		if sys == rrCLIProxy {
			if _, err := startReady(l.self, "http-serve", "-listen", proxiedAddr, "-dir", l.dataDir); err != nil {
				return nil, err
			}
			serve = []string{"serve", "--proxy", "http://" + proxiedAddr}
		}
		if _, err := start(l.a, l.cpus.sender, l.cfg.p2phttp, append(serve, peer...)...); err != nil {
			return nil, err
		}
		if _, err := start(l.b, l.cpus.receiver, l.cfg.p2phttp, append([]string{"forward", "--listen", "127.0.0.1:8000"}, peer...)...); err != nil {
			return nil, err
		}
		return httpClient("http://127.0.0.1:8000/" + smallName)
	case rrTCPHTTP:
		if _, err := startReady(l.self, "http-serve", "-listen", fmt.Sprintf(":%d", httpPort), "-dir", l.dataDir); err != nil {
			return nil, err
		}
		return httpClient(fmt.Sprintf("http://%s/%s", netip.AddrPortFrom(l.wan, httpPort), smallName))
	}
	return nil, fmt.Errorf("unknown -rr system %q", sys)
}

// proc is a process running inside a lab namespace.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	lines  *bufio.Reader // over stdout, for processes that report in JSON lines
	stderr *syncbuf.Buffer
	done   chan struct{}
	err    error
	once   sync.Once
}

// startProc runs name in h's namespace, pinned to cpu unless it is negative.
func startProc(ctx context.Context, h *nslab.Host, cpu int, name string, args ...string) (*proc, error) {
	var cmd *exec.Cmd
	if cpu >= 0 {
		cmd = h.Command(ctx, "taskset", append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
	} else {
		cmd = h.Command(ctx, name, args...)
	}
	p := &proc{cmd: cmd, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if p.stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	p.lines = bufio.NewReader(p.stdout)
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// readJSONLine decodes the next stdout line into v.
func (p *proc) readJSONLine(v any) error { return readJSON(p.lines, v) }

// readStderrJSONLine decodes the first JSON line of stderr into v, waiting up to connectLimit for it.
func (p *proc) readStderrJSONLine(v any) error {
	deadline := time.Now().Add(connectLimit)
	for time.Now().Before(deadline) {
		text := p.stderr.String()
		for len(text) > 0 {
			line, rest, complete := strings.Cut(text, "\n")
			if !complete {
				break
			}
			if strings.HasPrefix(line, "{") {
				return json.Unmarshal([]byte(line), v)
			}
			text = rest
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no report line within %v", connectLimit)
}

func readJSON(r *bufio.Reader, v any) error {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("no report line: %w", err)
		}
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("{")) {
			return json.Unmarshal(line, v)
		}
	}
}

// wait waits for the process to exit on its own.
func (p *proc) wait() error {
	p.once.Do(func() { p.err = p.cmd.Wait(); close(p.done) })
	return p.err
}

// stop interrupts the process (SIGINT, then SIGKILL after stopGrace) and reaps it.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	go func() {
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = p.cmd.Process.Kill()
		}
	}()
	_ = p.wait()
}

// cpu is the process's user + system time in seconds, once it has exited.
func (p *proc) cpu() float64 {
	if p.cmd.ProcessState == nil {
		return 0
	}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return 0
}

// cpuSoFar is the process's user + system time in seconds while it runs, from /proc (clock-tick resolution).
func (p *proc) cpuSoFar() float64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces: utime and stime are
	// the 12th and 13th of them.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (utime + stime) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux architecture Go supports.
const clockTicks = 100

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
