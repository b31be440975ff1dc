package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/signal"
)

const defaultSignalURL = "http://127.0.0.1:8080"

// usageError is a bad command line; it is printed with a pointer to --help.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// flagSet is one command's flags and its help text (usage line, description, then "Examples:" and examples).
type flagSet struct {
	*flag.FlagSet
	help string
}

func newFlagSet(name, help string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported as one line by report; --help is printed by parse
	fs.Usage = func() {}
	return &flagSet{fs, help}
}

// parse parses args, allowing flags after positional arguments ("get CODE /path -o out"); "--" ends flags. It returns
// the positional arguments. On --help it prints the help to stdout and returns flag.ErrHelp.
func (fs *flagSet) parse(env *cliEnv, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printHelp(env.stdout)
				return nil, err
			}
			return nil, usageError{fs.explainParseError(err)}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// explainParseError adds the nearest flag to an unknown one.
func (fs *flagSet) explainParseError(err error) string {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return err.Error()
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	near, ok := closestName(strings.TrimPrefix(name, "-"), names)
	if !ok {
		return err.Error()
	}
	dashes := "--"
	if len(near) == 1 {
		dashes = "-"
	}
	return fmt.Sprintf("%s (did you mean %s%s?)", err.Error(), dashes, near)
}

func (fs *flagSet) printHelp(w io.Writer) {
	usage, examples, _ := strings.Cut(fs.help, "\nExamples:\n")
	fmt.Fprint(w, strings.TrimRight(usage, "\n"), "\n\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "v" {
			return // listed with --verbose
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if f.Name == "verbose" {
			line = "  -v, --verbose"
		} else if len(f.Name) == 1 {
			line = "  -" + f.Name
		}
		if name != "" {
			line += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" {
			if strings.HasSuffix(usage, ")") {
				usage = strings.TrimSuffix(usage, ")") + "; default " + f.DefValue + ")"
			} else {
				usage += " (default " + f.DefValue + ")"
			}
		}
		fmt.Fprintf(w, "%-26s %s\n", line, usage)
	})
	if examples != "" {
		fmt.Fprint(w, "\nExamples:\n", examples)
	}
}

// logFlags are the logging flags every command has.
type logFlags struct{ verbose bool }

func (l *logFlags) register(fs *flagSet) {
	fs.BoolVar(&l.verbose, "verbose", false, "log each step (debug level) to stderr")
	fs.BoolVar(&l.verbose, "v", false, "")
}

func (l *logFlags) logger(env *cliEnv) *slog.Logger {
	level := slog.LevelWarn
	if l.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
}

// peerFlags are the flags of the commands that meet a peer.
type peerFlags struct {
	logFlags
	signalURL string
	stunAddr  string
	udpAddr   string
	wait      time.Duration
	verify    bool
}

func (p *peerFlags) register(fs *flagSet, env *cliEnv, wait time.Duration) {
	p.logFlags.register(fs)
	def := env.getenv("P2PHTTP_SIGNAL")
	if def == "" {
		def = defaultSignalURL
	}
	fs.StringVar(&p.signalURL, "signal", def, "signalling server `URL` (env P2PHTTP_SIGNAL)")
	fs.StringVar(&p.stunAddr, "stun", env.getenv("P2PHTTP_STUN"), "STUN server `HOST:PORT` (env P2PHTTP_STUN; default the signalling host, port 3478)")
	fs.StringVar(&p.udpAddr, "udp", rendezvous.DefaultLocalAddr, "local UDP `ADDR` to bind (fix the port to forward it on a router)")
	fs.DurationVar(&p.wait, "wait", wait, "wait this `DURATION` (30s, 5m) for the peer to join; 0 waits until Ctrl-C")
	fs.BoolVar(&p.verify, "verify", false, "print a short string derived from the session key; the other side prints the same one "+
		"unless someone sat in the middle: compare it aloud")
}

// check validates the flags before any network traffic, so a typo is a usage error rather than a timeout.
func (p *peerFlags) check() error {
	u, err := url.Parse(p.signalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--signal %q is not an http:// or https:// URL", p.signalURL)
	}
	if p.stunAddr != "" {
		if _, port, err := net.SplitHostPort(p.stunAddr); err != nil || port == "" {
			return usagef("--stun %q is not HOST:PORT", p.stunAddr)
		}
	}
	if p.wait < 0 {
		return usagef("--wait must not be negative")
	}
	return nil
}

func (p *peerFlags) config(code string, log *slog.Logger) rendezvous.Config {
	return rendezvous.Config{
		SignalURL:   p.signalURL,
		STUNAddr:    p.stunAddr,
		Code:        code,
		LocalAddr:   p.udpAddr,
		PeerTimeout: p.wait,
		Logger:      log,
	}
}

// describePath is the one line every peer command prints once connected. "set up in" counts gathering candidates,
// punching and opening the first stream, not the wait for the other side. A relayed path says which relay carries
// it; watchRoute reports when it moves to a direct path and back.
func describePath(r rendezvous.Report) string {
	var line string
	if r.Route.Relayed {
		line = fmt.Sprintf("connected via relay %s (rtt %s), set up in %s", r.Route.Relay.Addr(), roundDuration(r.Route.RTT),
			roundDuration(r.Total-r.Signal))
	} else {
		how := "punched through NAT"
		if r.Direct {
			how = "no NAT in between"
		}
		line = fmt.Sprintf("connected: direct path to peer %s (%s: %s %s <-> %s %s), rtt %s, set up in %s",
			r.RemoteAddr, how, r.LocalCandidate.Kind, r.LocalCandidate.Addr, r.PeerCandidate.Kind, r.PeerCandidate.Addr,
			roundDuration(r.RTT), roundDuration(r.Total-r.Signal))
	}
	// The signalling step is mostly waiting for the other side to show up: time of the user's, not the connection's.
	if r.Signal >= time.Second {
		line += fmt.Sprintf(" after waiting %s for the peer", roundDuration(r.Signal))
	}
	return line
}

// describeRouteChange is the line printed when a path moves between the relay and a direct route (from was the
// route before, to is the new one), or "" for a move that changes neither (a NAT rebinding a direct route).
func describeRouteChange(from, to rendezvous.Route) string {
	switch {
	case from.Relayed && !to.Relayed:
		return fmt.Sprintf("upgraded to a direct path after %s (rtt %s)", roundDuration(to.Since.Sub(from.Since)), roundDuration(to.RTT))
	case !from.Relayed && to.Relayed:
		return fmt.Sprintf("the direct path died after %s; back on relay %s (rtt %s)", roundDuration(to.Since.Sub(from.Since)),
			to.Relay.Addr(), roundDuration(to.RTT))
	}
	return ""
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// meetError is a failed meeting with what is needed to tell the user what to try next.
type meetError struct {
	flags *peerFlags
	code  string
	err   error
}

func (e *meetError) Error() string { return e.err.Error() }
func (e *meetError) Unwrap() error { return e.err }

// explain turns an error into one line saying what failed and what to try next.
func explain(err error) string {
	var me *meetError
	if !errors.As(err, &me) {
		return err.Error()
	}
	p := me.flags
	cause := rootCause(me.err)
	switch {
	case errors.Is(err, rendezvous.ErrSignalUnreachable):
		return fmt.Sprintf("cannot reach signalling server %s: %s; start one with `p2phttp signal` or pass --signal URL",
			p.signalURL, cause)
	case errors.Is(err, signal.ErrNameplateInUse):
		return fmt.Sprintf("another serve holds the nameplate of code %q on %s; pick another code, or run serve without CODE",
			me.code, p.signalURL)
	case errors.Is(err, rendezvous.ErrSignalRefused):
		return fmt.Sprintf("signalling server %s refused code %q: %s; pick a new code (run serve without CODE) or retry later",
			p.signalURL, me.code, cause)
	case errors.Is(err, rendezvous.ErrWrongCode):
		return fmt.Sprintf("code %q is wrong: the peer holding its nameplate could not confirm the key; check the code with "+
			"the other side (after a few wrong tries serve picks a new code and prints it)", me.code)
	case errors.Is(err, rendezvous.ErrPeerLeft):
		return fmt.Sprintf("the peer left during the meeting: %s; retry", cause)
	case errors.Is(err, signal.ErrNoCommonCipher):
		return fmt.Sprintf("%s; run the same p2phttp version on both sides", strings.TrimPrefix(cause, "signal: "))
	case errors.Is(err, signal.ErrHostBusy):
		return fmt.Sprintf("the peer serving code %q stayed busy with other guests (waited %s); retry later, or raise --wait",
			me.code, p.wait)
	case errors.Is(err, rendezvous.ErrPeerNeverCame):
		return fmt.Sprintf("nobody serves code %q (waited %s); run `p2phttp serve` on the other side, check the code and --signal %s, or raise --wait",
			me.code, p.wait, p.signalURL)
	case errors.Is(err, rendezvous.ErrPunchFailed):
		return fmt.Sprintf("could not punch a path to the peer: %s; both NATs may rewrite ports per destination (symmetric NAT): "+
			"try another network, or forward a fixed --udp port to one peer", cause)
	case errors.Is(err, rendezvous.ErrStreamFailed):
		return fmt.Sprintf("punched a path but the first stream failed: %s; retry, or run with -v to see why", cause)
	case errors.Is(err, rendezvous.ErrGatherFailed):
		return fmt.Sprintf("cannot set up the local UDP socket %s: %s; check --udp", p.udpAddr, cause)
	default:
		return me.err.Error() + "; run with -v to see each step"
	}
}

// rootCause is the most telling short reason inside err: an errno ("connection refused"), a DNS failure, a timeout,
// else the whole message.
func rootCause(err error) string {
	var errno syscall.Errno
	var dns *net.DNSError
	var re *rendezvous.Error
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &dns):
		return dns.Error()
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return "no answer in time"
	case errors.As(err, &re) && re.Err != nil:
		return re.Err.Error()
	default:
		return err.Error()
	}
}
