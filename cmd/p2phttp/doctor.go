package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/stun/v2"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/rendezvous/natprobe"
	"github.com/p2phttp/p2phttp/signal"
)

const doctorHelp = `Usage: p2phttp doctor [--signal URL] [--stun HOST:PORT] [--json]

Tell what to expect before a meeting: whether UDP gets out to the signalling server's STUN responder and how fast;
how the NAT in front of this machine maps and filters UDP (RFC 5780 tests against the server's two STUN ports), and
whether it hairpins; whether the server's TURN relay answers over UDP and over TCP, and how fast; then a one-line
verdict: "direct connections likely", "direct connections likely with most peers", "direct connections likely by
the hard-NAT punch; a peer behind another symmetric NAT will use the relay", "expect the relay", "no UDP: the relay
over TCP will carry your traffic" or "cannot reach the relay: ...". Exits 0 when it could run the tests (whatever they found), 1 when the signalling server is unreachable.

Examples:
  p2phttp doctor --signal http://signal.example:8080
  p2phttp doctor --json | jq .verdict
`

// Verdicts of p2phttp doctor.
const (
	verdictDirect      = "direct connections likely"
	verdictMostDirect  = "direct connections likely with most peers"
	verdictHardNAT     = "direct connections likely by the hard-NAT punch; a peer behind another symmetric NAT will use the relay"
	verdictRelay       = "expect the relay"
	verdictTCPRelay    = "no UDP: the relay over TCP will carry your traffic"
	verdictNoRelayPfx  = "cannot reach the relay: "
	doctorProbeTimeout = 30 * time.Second
	doctorRelayTimeout = 5 * time.Second
)

// doctorReport is what doctor found; its JSON is the --json output.
type doctorReport struct {
	Signal struct {
		URL       string  `json:"url"`
		Reachable bool    `json:"reachable"`
		RTTMS     float64 `json:"rtt_ms,omitempty"`
		Error     string  `json:"error,omitempty"`
	} `json:"signal"`
	UDP struct {
		STUN      string   `json:"stun"`
		Reachable bool     `json:"reachable"`
		RTTMS     float64  `json:"rtt_ms,omitempty"`
		Local     string   `json:"local,omitempty"`
		Public    string   `json:"public,omitempty"`
		Error     string   `json:"error,omitempty"`
		Mapping   string   `json:"mapping,omitempty"`   // natprobe's words: "no NAT", "endpoint-independent", ...
		Filtering string   `json:"filtering,omitempty"` // "address-dependent or open", "address-and-port-dependent", "unknown"
		Hairpin   *bool    `json:"hairpin,omitempty"`
		Notes     []string `json:"notes,omitempty"`
	} `json:"udp"`
	Relays  []relayCheck `json:"relays"` // empty: the server offers no relay
	Verdict string       `json:"verdict"`
}

// relayCheck is a STUN Binding to one relay URL.
type relayCheck struct {
	URL       string  `json:"url"`
	Transport string  `json:"transport"` // "udp" or "tcp"
	Reachable bool    `json:"reachable"`
	RTTMS     float64 `json:"rtt_ms,omitempty"`
	Error     string  `json:"error,omitempty"`
}

func runDoctor(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("doctor", doctorHelp)
	var lf logFlags
	lf.register(fs)
	def := env.getenv("P2PHTTP_SIGNAL")
	if def == "" {
		def = defaultSignalURL
	}
	signalURL := fs.String("signal", def, "signalling server `URL` (env P2PHTTP_SIGNAL)")
	stunAddr := fs.String("stun", env.getenv("P2PHTTP_STUN"), "STUN server `HOST:PORT` (env P2PHTTP_STUN; default the signalling host, port 3478)")
	asJSON := fs.Bool("json", false, "print the findings as one JSON object, for programs")
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	u, err := url.Parse(*signalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--signal %q is not an http:// or https:// URL", *signalURL)
	}
	if *stunAddr == "" {
		*stunAddr = net.JoinHostPort(u.Hostname(), rendezvous.DefaultSTUNPort)
	} else if _, port, err := net.SplitHostPort(*stunAddr); err != nil || port == "" {
		return usagef("--stun %q is not HOST:PORT", *stunAddr)
	}

	log := lf.logger(env)
	rep := doctorReport{Relays: []relayCheck{}}
	rep.Signal.URL = *signalURL
	rep.UDP.STUN = *stunAddr
	log.Debug("doctor: asking the signalling server", "url", *signalURL)
	relays, err := checkSignal(ctx, &rep, *signalURL)
	if err == nil {
		log.Debug("doctor: probing UDP and the NAT", "stun", *stunAddr)
		checkUDP(ctx, &rep, *stunAddr)
		log.Debug("doctor: asking the relay", "urls", relays)
		rep.Relays = checkRelays(ctx, relays)
		rep.Verdict = verdict(&rep)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if *asJSON {
		out, _ := json.MarshalIndent(&rep, "", "  ")
		fmt.Fprintf(env.stdout, "%s\n", out)
	} else {
		printDoctor(env.stdout, &rep)
	}
	if err != nil {
		return fmt.Errorf("cannot reach signalling server %s: %w; start one with `p2phttp signal` or pass --signal URL", *signalURL, err)
	}
	return nil
}

// checkSignal asks the signalling server's health check and returns the relay URLs it lists.
func checkSignal(ctx context.Context, rep *doctorReport, base string) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, rendezvous.DefaultServerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, strings.TrimSuffix(base, "/")+signal.HealthzPath, nil)
	if err != nil {
		rep.Signal.Error = err.Error()
		return nil, err
	}
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		rep.Signal.Error = err.Error()
		return nil, err
	}
	defer res.Body.Close()
	rtt := time.Since(start)
	var h signal.HealthResponse
	err = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&h)
	switch {
	case err != nil:
		err = fmt.Errorf("GET %s answered %s without a health report: not a p2phttp signalling server?", signal.HealthzPath, res.Status)
	case res.StatusCode != http.StatusOK:
		err = fmt.Errorf("the server is unwell: %s (%s)", h.Status, h.Error)
	}
	if err != nil {
		rep.Signal.Error = err.Error()
		return nil, err
	}
	rep.Signal.Reachable, rep.Signal.RTTMS = true, ms(rtt)
	return h.Relay, nil
}

// checkUDP runs the NAT probe against the STUN responder.
func checkUDP(ctx context.Context, rep *doctorReport, stunAddr string) {
	pctx, cancel := context.WithTimeout(ctx, doctorProbeTimeout)
	defer cancel()
	res, err := natprobe.Probe(pctx, natprobe.Config{Server: stunAddr})
	if res.Local.IsValid() {
		rep.UDP.Local = res.Local.String()
	}
	if err != nil {
		rep.UDP.Error = err.Error()
		return
	}
	rep.UDP.Reachable, rep.UDP.RTTMS, rep.UDP.Public = true, ms(res.RTT), res.Mapped.String()
	rep.UDP.Mapping, rep.UDP.Filtering, rep.UDP.Hairpin, rep.UDP.Notes = res.Mapping.String(), res.Filtering.String(), res.Hairpin, res.Notes
}

// checkRelays sends a STUN Binding request to each relay URL over its transport (TURN servers answer them).
func checkRelays(ctx context.Context, urls []string) []relayCheck {
	checks := make([]relayCheck, 0, len(urls))
	for _, raw := range urls {
		c := relayCheck{URL: raw}
		addr, transport, err := parseTURNURL(raw)
		c.Transport = transport
		if err == nil {
			var rtt time.Duration
			rtt, err = stunPing(ctx, transport, addr)
			c.RTTMS = ms(rtt)
		}
		if err != nil {
			c.Error = err.Error()
		} else {
			c.Reachable = true
		}
		checks = append(checks, c)
	}
	return checks
}

// parseTURNURL reads "turn:HOST:PORT?transport=udp|tcp" (RFC 7065; transport defaults to udp).
func parseTURNURL(raw string) (addr, transport string, err error) {
	rest, ok := strings.CutPrefix(raw, "turn:")
	if !ok {
		return "", "", fmt.Errorf("not a turn: URL")
	}
	hostport, query, _ := strings.Cut(rest, "?")
	transport = "udp"
	if v, ok := strings.CutPrefix(query, "transport="); ok {
		transport = v
	}
	if transport != "udp" && transport != "tcp" {
		return "", transport, fmt.Errorf("transport %q is neither udp nor tcp", transport)
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return "", transport, fmt.Errorf("address %q: %w", hostport, err)
	}
	return hostport, transport, nil
}

// stunPing sends one Binding request to addr over network ("udp", retransmitted; or "tcp") and times the answer.
func stunPing(ctx context.Context, network, addr string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, doctorRelayTimeout)
	defer cancel()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 1500)
	if network == "tcp" {
		// STUN over TCP: messages follow each other, each framed by its header's length.
		if _, err := conn.Write(req.Raw); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(conn, buf[:20]); err != nil {
			return 0, noAnswer(ctx, err)
		}
		n := 20 + (int(buf[2])<<8 | int(buf[3]))
		if n > len(buf) {
			return 0, errors.New("answer too long")
		}
		if _, err := io.ReadFull(conn, buf[20:n]); err != nil {
			return 0, noAnswer(ctx, err)
		}
		return time.Since(start), checkBinding(buf[:n], req)
	}
	for wait := 250 * time.Millisecond; ; wait *= 2 {
		if _, err := conn.Write(req.Raw); err != nil {
			return 0, err
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err == nil && checkBinding(buf[:n], req) == nil {
			return time.Since(start), nil
		}
		if ctx.Err() != nil {
			return 0, noAnswer(ctx, err)
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return 0, err
		}
	}
}

func noAnswer(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("no answer within %s", doctorRelayTimeout)
	}
	return err
}

// checkBinding checks that b is a Binding success answering req.
func checkBinding(b []byte, req *stun.Message) error {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return fmt.Errorf("not a STUN answer: %w", err)
	}
	if m.TransactionID != req.TransactionID || m.Type != stun.BindingSuccess {
		return fmt.Errorf("unexpected STUN answer %v", m.Type)
	}
	return nil
}

// verdict sums the findings up in one line.
func verdict(rep *doctorReport) string {
	reach := map[string]bool{}
	var why []string
	for _, c := range rep.Relays {
		reach[c.Transport] = reach[c.Transport] || c.Reachable
		if !c.Reachable {
			why = append(why, fmt.Sprintf("%s over %s: %s", c.URL, c.Transport, c.Error))
		}
	}
	noRelay := func() string {
		if len(rep.Relays) == 0 {
			return verdictNoRelayPfx + "the signalling server offers none"
		}
		return verdictNoRelayPfx + strings.Join(why, "; ")
	}
	if !rep.UDP.Reachable {
		switch {
		case reach["udp"]: // UDP gets to the relay, not to STUN: a filter of ports
			return verdictRelay
		case reach["tcp"]:
			return verdictTCPRelay
		}
		return noRelay() + " (and no UDP: " + rep.UDP.Error + ")"
	}
	switch {
	case rep.UDP.Mapping == natprobe.MappingDestinationDependent.String():
		if !reach["udp"] && !reach["tcp"] {
			return noRelay() + "; with this NAT, a peer behind another symmetric NAT cannot connect"
		}
		return verdictHardNAT
	case rep.UDP.Mapping == natprobe.MappingNone.String(),
		rep.UDP.Mapping == natprobe.MappingEndpointIndependent.String(),
		rep.UDP.Filtering == natprobe.FilteringAddressOnly.String():
		// One public port for every destination: punching reaches any peer, a symmetric one by the hard-NAT punch.
		return verdictDirect
	}
	return verdictMostDirect
}

// printDoctor writes the findings for a person.
func printDoctor(w io.Writer, rep *doctorReport) {
	line := func(what, format string, args ...any) {
		fmt.Fprintf(w, "%-19s %s\n", what, fmt.Sprintf(format, args...))
	}
	if !rep.Signal.Reachable {
		return // the command's error says so
	}
	line("signalling server", "%s: reachable, rtt %s", rep.Signal.URL, msDuration(rep.Signal.RTTMS))
	if !rep.UDP.Reachable {
		line("UDP", "no answer from STUN at %s: UDP is blocked on the way (or the server's STUN port is closed)", rep.UDP.STUN)
	} else {
		line("UDP", "STUN at %s answered, rtt %s; the internet sees you as %s", rep.UDP.STUN, msDuration(rep.UDP.RTTMS), rep.UDP.Public)
		switch rep.UDP.Mapping {
		case natprobe.MappingNone.String():
			line("NAT", "none: your own address (%s) is what the internet sees", rep.UDP.Public)
		case natprobe.MappingEndpointIndependent.String():
			line("NAT mapping", "endpoint-independent: one public port for every destination (hole punching works)")
		case natprobe.MappingDestinationDependent.String():
			line("NAT mapping", "destination-dependent (a symmetric NAT): a new public port per destination; the hard-NAT punch gets through to other NATs")
		default:
			line("NAT mapping", "not tested")
		}
		switch rep.UDP.Filtering {
		case natprobe.FilteringAddressOnly.String():
			line("filtering", "lets in any port of an address you sent to (or anything): the easiest kind")
		case natprobe.FilteringAddressAndPort.String():
			line("filtering", "lets in only the exact address and port you sent to: punching needs both sides to send")
		default:
			line("filtering", "not tested")
		}
		switch {
		case rep.UDP.Hairpin == nil:
		case *rep.UDP.Hairpin:
			line("hairpinning", "yes: two peers behind this NAT can reach each other at their public addresses")
		default:
			line("hairpinning", "no: two peers behind this NAT meet by their local addresses instead")
		}
		for _, n := range rep.UDP.Notes {
			line("", "(%s)", n)
		}
	}
	if len(rep.Relays) == 0 {
		line("relay", "the signalling server offers none")
	}
	for _, c := range rep.Relays {
		what := "relay over " + strings.ToUpper(c.Transport)
		if c.Reachable {
			line(what, "%s answered, rtt %s", c.URL, msDuration(c.RTTMS))
		} else {
			line(what, "%s: %s", c.URL, c.Error)
		}
	}
	fmt.Fprintf(w, "verdict: %s\n", rep.Verdict)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func msDuration(v float64) time.Duration {
	return roundDuration(time.Duration(v * float64(time.Millisecond)))
}
