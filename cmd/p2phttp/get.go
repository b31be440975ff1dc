package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

const getHelp = `Usage: p2phttp get PATH [-o FILE | -O] [flags]

Meet the peer that runs "p2phttp serve" and fetch PATH from it. The code comes from $P2PHTTP_CODE, else get asks for
it on the terminal (Tab completes the words), else it reads a line from stdin; "get CODE PATH" works too, but other
users of this machine can see a code on the command line.

The body goes to stdout, to FILE with -o, or with -O to a file in the current folder named after PATH. A file is
written to FILE.part first and renamed once complete; when a FILE.part from an earlier run is there, get asks the peer
only for the rest (Range with If-Range, so a file that changed on the peer is fetched again whole). A device or FIFO
(-o /dev/null) is written into, a symlink is followed; neither is ever replaced. A progress line is drawn on stderr
when it is a terminal, and a summary line (bytes, time, rate) at the end.

Exits 0 when the peer answers 2xx; otherwise prints the status and exits 3 (1 when the peer cannot be reached or stops
answering for --timeout, 130 on Ctrl-C, which keeps FILE.part for the next run).

Examples:
  p2phttp get /                                     # asks for the code; directory listing or index page
  p2phttp get /photos/cat.jpg -O --signal http://signal.example.org:8080
  P2PHTTP_CODE=7-amber-otter p2phttp get /iso/big.iso -o /data/big.iso   # again after Ctrl-C: resumes
  echo 7-amber-otter | p2phttp get /api/status | jq .
`

// httpStatusError is a response that is not 2xx; it makes get exit with exitHTTPStatus. Every field is escaped text.
type httpStatusError struct {
	path   string
	status string
	body   string // the start of the body, for the user to see why
}

func (e httpStatusError) Error() string {
	msg := fmt.Sprintf("peer answered %s for %s", e.status, e.path)
	if e.body != "" {
		msg += ": " + e.body
	}
	return msg
}

// errorBodyPreview is how much of a non-2xx body get shows.
const errorBodyPreview = 200

// defaultGetTimeout is how long get waits for the peer to send anything (the response, or more of the body).
const defaultGetTimeout = time.Minute

// errPeerSilent ends a get whose peer sent nothing for --timeout.
var errPeerSilent = errors.New("the peer stopped answering")

func runGet(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("get", getHelp)
	var pf peerFlags
	pf.register(fs, env, 2*time.Minute)
	out := fs.String("o", "", "write the body to `FILE` instead of stdout (resumes FILE.part)")
	byName := fs.Bool("O", false, "write the body to a file in the current folder named after PATH (resumes)")
	timeout := fs.Duration("timeout", defaultGetTimeout, "give up when the peer sends nothing for this `DURATION`; 0 waits forever")
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	var codeArg, rawPath string
	switch len(pos) {
	case 1:
		rawPath = pos[0]
	case 2:
		codeArg, rawPath = pos[0], pos[1]
	default:
		return usagef("expected PATH (or CODE PATH), got %q", pos)
	}
	if err := pf.check(); err != nil {
		return err
	}
	if *timeout < 0 {
		return usagef("--timeout must not be negative")
	}
	target := rawPath
	if !strings.HasPrefix(target, "/") {
		target = "/" + target
	}
	u, err := url.Parse("http://peer" + target)
	if err != nil {
		return usagef("PATH %q: %s", rawPath, err)
	}
	if *byName {
		if *out != "" {
			return usagef("pass either -o FILE or -O, not both")
		}
		if *out, err = nameFromPath(u.Path); err != nil {
			return err
		}
	}
	// Everything about the output is checked before meeting, so a wrong -o never costs the wait for the peer.
	dst, err := resolveOutput(*out)
	if err != nil {
		return err
	}
	var part *partial
	if !dst.stdout() && !dst.special {
		if part, err = openPartial(dst.path, u.Path); err != nil {
			return err
		}
		defer func() {
			if kept := part.keep(); kept > 0 {
				fmt.Fprintf(env.stderr, "p2phttp: kept %s in %s; run the same command again to resume\n",
					formatBytes(kept), dst.path+partSuffix)
			}
		}()
	}
	code, err := peerCode(env, codeArg)
	if err != nil {
		return err
	}

	log := pf.logger(env)
	if err := pf.probeSignal(ctx); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "p2phttp: waiting for the peer with code %s at %s\n", escapeText(code), pf.signalURL)
	sess, err := pf.meet(ctx, env, code, log)
	if err != nil {
		return err
	}
	defer sess.Close()

	// From here on, a peer that sends nothing for --timeout ends the request.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := newWatchdog(*timeout, func() { cancel(fmt.Errorf("%w: nothing came for %s (--timeout)", errPeerSilent, *timeout)) })
	defer watchdog.stop()

	// The first request written makes this end of the symmetric socket the client.
	client := &http.Client{
		Transport: symhttp.NewRoundTripper(symsock.New(sess.Stream())),
		// Redirects within the peer are followed; one elsewhere would be sent to the peer too, so it is shown instead.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != u.Host || len(via) >= 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	start := time.Now()
	var resp *http.Response
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "p2phttp")
		if part != nil {
			part.prepare(req)
		}
		watchdog.kick()
		resp, err = client.Do(req)
		if errors.Is(err, symsock.ErrParsing) {
			return fmt.Errorf("the peer did not answer with HTTP (%w); is it running `p2phttp serve` with this code?", err)
		}
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errPeerSilent) {
				err = cause
			}
			return fmt.Errorf("GET %s from the peer failed: %w", escapeText(target), err)
		}
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || part == nil || !part.ranged {
			break
		}
		// The rest of nothing: the part file is either the whole resource already, or of no use.
		io.Copy(io.Discard, io.LimitReader(resp.Body, errorBodyPreview))
		resp.Body.Close()
		if part.complete(resp) {
			if err := part.finish(); err != nil {
				return err
			}
			fmt.Fprintf(env.stderr, "p2phttp: %s was already complete (%s)\n", dst.name, formatBytes(part.have))
			return nil
		}
		part.startOver()
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		preview, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyPreview))
		e := httpStatusError{path: escapeText(target), status: escapeText(resp.Status), body: oneLine(preview)}
		if loc := resp.Header.Get("Location"); loc != "" && e.body == "" {
			e.body = "Location: " + escapeText(loc)
		}
		return e
	}
	return saveBody(ctx, env, resp, watchdog, dst, part, u.Path, start)
}

// saveBody copies the body to its output, drawing progress on a terminal, checks it is complete and prints the
// summary line.
func saveBody(ctx context.Context, env *cliEnv, resp *http.Response, wd *watchdog, dst *output, part *partial, reqPath string, start time.Time) error {
	var w io.Writer = env.stdout
	offset, total := int64(0), resp.ContentLength
	switch {
	case part != nil:
		var err error
		if offset, total, err = part.accept(resp, reqPath); err != nil {
			return err
		}
		if offset > 0 {
			fmt.Fprintf(env.stderr, "p2phttp: resuming %s at %s%s\n", dst.name, formatBytes(offset), percentOf(offset, total))
		} else if part.ranged {
			fmt.Fprintf(env.stderr, "p2phttp: %s changed on the peer since the last run; starting over\n", reqPath)
		}
		w = part.file
	case dst.special:
		wd.stop() // waiting for a FIFO's reader is no silence of the peer's
		f, err := openSpecial(ctx, dst.path)
		wd.kick()
		if err != nil {
			return fmt.Errorf("cannot write -o %s: %w", dst.name, err)
		}
		defer f.Close()
		w = f
	}
	var prog *progress
	if isTerminal(env.stderr) && (!dst.stdout() || !isTerminal(env.stdout)) {
		prog = newProgress(env.stderr, total)
		prog.n, prog.base = offset, offset
		w = io.MultiWriter(w, prog)
	}
	n, err := io.Copy(wd.writer(w), wd.reader(resp.Body))
	if prog != nil {
		prog.Done()
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errPeerSilent) {
			err = cause
		}
		return fmt.Errorf("transfer failed after %s: %w", formatBytes(n), err)
	}
	if total >= 0 && offset+n != total {
		return fmt.Errorf("transfer incomplete: got %d of %d bytes", offset+n, total)
	}
	if part != nil {
		if err := part.finish(); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.stderr, "p2phttp: %s\n", summary(dst, n, offset, time.Since(start)))
	return nil
}

// summary is get's last line, e.g. "saved big.iso: 512.0 MiB received in 6.1s (83.9 MiB/s), resumed at 512.0 MiB".
func summary(dst *output, n, offset int64, took time.Duration) string {
	where := "received"
	if !dst.stdout() {
		where = "saved " + dst.name + ":"
	}
	s := fmt.Sprintf("%s %s in %s (%s/s)", where, formatBytes(n), roundDuration(took), formatBytes(rate(n, took)))
	if offset > 0 {
		s += fmt.Sprintf(", resumed at %s", formatBytes(offset))
	}
	return s
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

func percentOf(n, total int64) string {
	if total <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%.1f%%)", float64(n)*100/float64(total))
}

// oneLine squeezes peer-supplied text to one line that is safe to print.
func oneLine(b []byte) string {
	return escapeText(strings.Join(strings.Fields(string(b)), " "))
}
