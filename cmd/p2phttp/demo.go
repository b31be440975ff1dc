package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/transport/utp"
)

const demoHelp = `Usage: p2phttp demo [flags]

Run a signalling server, its STUN responder and two peers in one process on loopback, and show each step of a
meeting: host A picks a code, guest B meets it with the code (a PAKE through the server, which sees only the code's
nameplate), the candidates each gathered, the punched path, then one HTTP exchange in each role over the symmetric
socket. On the first stream A writes a request first and so becomes the client; on a second stream B writes first and
becomes the client. Exits 0 when both exchanges worked.

Examples:
  p2phttp demo
  p2phttp demo -v          # also log every step of both peers
`

// demoTimeout bounds the whole demo so it can never hang.
const demoTimeout = 30 * time.Second

func runDemo(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("demo", demoHelp)
	var lf logFlags
	lf.register(fs)
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	log := lf.logger(env)
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	out := env.stdout

	// 1. The signalling server and its STUN responder, on loopback ports the kernel picks.
	scfg := rendezvoustest.Unlimited()
	scfg.Logger = log.With("component", "signal")
	srv, err := rendezvoustest.NewServer(scfg)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer srv.Close()
	fmt.Fprintf(out, "[1] signalling server on %s, STUN on udp %s\n", srv.URL, srv.STUNAddr)

	// 2. Host A picks a code and waits for guests; guest B meets it with the code, as on two machines.
	cfgA, cfgB := srv.Config(""), srv.Config("")
	cfgA.Logger, cfgB.Logger = log.With("peer", "A"), log.With("peer", "B")
	host, sessA, sessB, err := rendezvoustest.Pair(ctx, cfgA, cfgB)
	if err != nil {
		return fmt.Errorf("demo: the peers could not meet: %w", err)
	}
	defer host.Close()
	defer sessB.Close()
	ra, rb := sessA.Report(), sessB.Report()
	fmt.Fprintf(out, "[2] host A holds code %s; guest B typed it. The server saw nameplate %d and opaque PAKE messages, "+
		"never the words, a key or an address\n", host.Code(), ra.Nameplate)
	fmt.Fprintf(out, "    key confirmed; verifier A %q, B %q (compare aloud: equal unless someone sat in the middle)\n",
		ra.Verifier, rb.Verifier)
	fmt.Fprintf(out, "[3] candidates gathered, exchanged encrypted (host = interface address, srflx = as STUN saw it):\n")
	fmt.Fprintf(out, "    peer A: %s; STUN saw %s\n", formatCandidates(ra.Candidates), formatReflexive(ra))
	fmt.Fprintf(out, "    peer B: %s; STUN saw %s\n", formatCandidates(rb.Candidates), formatReflexive(rb))
	fmt.Fprintf(out, "[4] punched path: A %s <-> B %s (%s <-> %s), rtt %s; guest B dials the uTP streams\n",
		ra.LocalCandidate.Addr, ra.RemoteAddr, ra.LocalCandidate.Kind, ra.PeerCandidate.Kind, roundDuration(ra.RTT))
	fmt.Fprintf(out, "    host A: gathered once when it started (%s); for this guest: meeting %s, punch %s, first stream %s, total %s\n",
		roundDuration(host.Report().Gather), roundDuration(ra.Signal), roundDuration(ra.Punch), roundDuration(ra.Stream),
		roundDuration(ra.Total))
	fmt.Fprintf(out, "    guest B: gather %s, meeting %s, punch %s, first stream %s, total %s\n",
		roundDuration(rb.Gather), roundDuration(rb.Signal), roundDuration(rb.Punch), roundDuration(rb.Stream),
		roundDuration(rb.Total))

	// 3. Stream 1: A writes first, so A is the client.
	fmt.Fprintf(out, "[5] stream 1 (the first stream of the meeting)\n")
	if err := demoExchange(out, "A", "B", sessA.Stream(), sessB.Stream(), "/hello"); err != nil {
		return err
	}

	// 4. Stream 2, opened by B: B writes first, so B is the client.
	fmt.Fprintf(out, "[6] stream 2 (opened by B)\n")
	sctx, cancelStream := context.WithTimeout(ctx, openStreamTimeout)
	defer cancelStream()
	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := sessA.AcceptStream(sctx)
		acc <- accepted{c, err}
	}()
	streamB, err := sessB.OpenStream(sctx)
	if err != nil {
		return fmt.Errorf("demo: peer B cannot open a second stream: %w", err)
	}
	defer streamB.Close()
	r := <-acc
	if r.err != nil {
		return fmt.Errorf("demo: peer A did not receive the second stream: %w", r.err)
	}
	defer r.c.Close()
	if err := demoExchange(out, "B", "A", streamB, r.c, "/again"); err != nil {
		return err
	}
	fmt.Fprintln(out, "done: one punched path, two streams; each peer became the client by writing first")
	return nil
}

// demoExchange runs one request and response between two fresh symmetric sockets over the two ends of one stream:
// the client's first action is WriteRequest, the server's is ReadRequest, and the states show the roles they took.
func demoExchange(out io.Writer, clientName, serverName string, clientConn, serverConn net.Conn, target string) error {
	deadline := time.Now().Add(10 * time.Second)
	clientConn.SetDeadline(deadline)
	serverConn.SetDeadline(deadline)
	defer clientConn.SetDeadline(time.Time{})
	defer serverConn.SetDeadline(time.Time{})

	client, server := symsock.New(clientConn), symsock.New(serverConn)
	fmt.Fprintf(out, "    both sockets undecided: read state %q, write state %q\n", client.ReadState(), client.WriteState())

	served := make(chan error, 1)
	go func() {
		var req symsock.Request
		if err := server.ReadRequest(&req); err != nil {
			served <- fmt.Errorf("peer %s: ReadRequest: %w", serverName, err)
			return
		}
		if err := readBody(server, &req, symsock.ReadFinished); err != nil {
			served <- fmt.Errorf("peer %s: reading the request body: %w", serverName, err)
			return
		}
		fmt.Fprintf(out, "    peer %s read a request first -> server; it got %s %s\n", serverName, req.Method, req.Target)
		body := fmt.Sprintf("hello from peer %s, the server of this stream; you asked for %s\n", serverName, req.Target)
		res := symsock.Response{Status: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			Body: []byte(body)}
		if err := server.WriteResponse(&res); err != nil {
			served <- fmt.Errorf("peer %s: WriteResponse: %w", serverName, err)
			return
		}
		served <- nil
	}()

	req := symsock.Request{Method: http.MethodGet, Target: target, Header: http.Header{"Host": {"peer-" + strings.ToLower(serverName)}}}
	if err := client.WriteRequest(&req); err != nil {
		return fmt.Errorf("peer %s: WriteRequest: %w", clientName, err)
	}
	fmt.Fprintf(out, "    peer %s wrote a request first -> client: GET %s\n", clientName, target)
	var res symsock.Response
	if err := client.ReadResponse(&res); err != nil {
		return fmt.Errorf("peer %s: ReadResponse: %w", clientName, err)
	}
	if err := readBody(client, &res, symsock.ReadEmpty); err != nil {
		return fmt.Errorf("peer %s: reading the response body: %w", clientName, err)
	}
	if err := <-served; err != nil {
		return err
	}
	fmt.Fprintf(out, "    peer %s got the response: %d %s, %q\n", clientName, res.Status, res.Reason, string(res.Body))
	if res.Status != http.StatusOK {
		return fmt.Errorf("peer %s: unexpected status %d", clientName, res.Status)
	}
	return nil
}

// readBody reads the rest of m's body until the socket reaches end, the read state that ends a message in its role.
func readBody(s *symsock.Socket, m symsock.Message, end symsock.ReadState) error {
	for s.ReadState() != end {
		if err := s.ReadSome(m); err != nil {
			return err
		}
	}
	return nil
}

func formatCandidates(cs []utp.Candidate) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s %s", c.Kind, c.Addr)
	}
	return strings.Join(parts, ", ")
}

func formatReflexive(r rendezvous.Report) string {
	if !r.Reflexive.IsValid() {
		return "nothing (" + r.STUNError + ")"
	}
	return r.Reflexive.String()
}
