package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

const getHelp = `Usage: p2phttp get CODE PATH [-o FILE] [flags]

Meet the peer that runs "p2phttp serve" with CODE and fetch PATH from it. The body goes to stdout, or to FILE with -o
(written to FILE.*.part first and renamed once complete, so an interrupted download never looks finished). A progress
line (bytes, rate, ETA) is drawn on stderr when stderr is a terminal and the body does not go to it.

Exits 0 when the peer answers 2xx; otherwise prints the status and exits 3 (1 when the peer cannot be reached).

Examples:
  p2phttp get 7-amber-otter /                       # directory listing or index page
  p2phttp get 7-amber-otter /photos/cat.jpg -o cat.jpg --signal http://signal.example.org:8080
  p2phttp get 7-amber-otter /api/status | jq .
`

// httpStatusError is a response that is not 2xx; it makes get exit with exitHTTPStatus.
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

func runGet(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("get", getHelp)
	var pf peerFlags
	pf.register(fs, env, 2*time.Minute)
	out := fs.String("o", "", "write the body to `FILE` instead of stdout")
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("expected CODE and PATH, got %q", pos)
	}
	if err := pf.check(); err != nil {
		return err
	}
	code, target := pos[0], pos[1]
	if !strings.HasPrefix(target, "/") {
		target = "/" + target
	}
	u, err := url.Parse("http://peer" + target)
	if err != nil {
		return usagef("PATH %q: %s", pos[1], err)
	}

	log := pf.logger(env)
	sess, err := pf.meet(ctx, env, code, log)
	if err != nil {
		return err
	}
	defer sess.Close()

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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "p2phttp")
	resp, err := client.Do(req)
	if errors.Is(err, symsock.ErrParsing) {
		return fmt.Errorf("the peer did not answer with HTTP (%w); is it running `p2phttp serve` with this code?", err)
	}
	if err != nil {
		return fmt.Errorf("GET %s from the peer failed: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		preview, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyPreview))
		e := httpStatusError{path: target, status: resp.Status, body: oneLine(preview)}
		if loc := resp.Header.Get("Location"); loc != "" && e.body == "" {
			e.body = "Location: " + loc
		}
		return e
	}
	return saveBody(env, resp, *out)
}

// saveBody copies the body to stdout or to file, drawing progress on a terminal, and checks it is complete.
func saveBody(env *cliEnv, resp *http.Response, file string) error {
	var dst io.Writer = env.stdout
	var tmp *os.File
	if file != "" && file != "-" {
		var err error
		tmp, err = os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".*.part")
		if err != nil {
			return fmt.Errorf("cannot write -o %s: %w", file, err)
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		tmp.Chmod(0o644) // CreateTemp makes 0600; a download should look like any file the user made
		dst = tmp
	}
	var prog *progress
	if isTerminal(env.stderr) && (tmp != nil || !isTerminal(env.stdout)) {
		prog = newProgress(env.stderr, resp.ContentLength)
		dst = io.MultiWriter(dst, prog)
	}
	n, err := io.Copy(dst, resp.Body)
	if prog != nil {
		prog.Done()
	}
	if err != nil {
		return fmt.Errorf("transfer failed after %s: %w", formatBytes(n), err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("transfer incomplete: got %d of %d bytes", n, resp.ContentLength)
	}
	if tmp == nil {
		return nil
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write -o %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("cannot write -o %s: %w", file, err)
	}
	tmp = nil
	return nil
}

// oneLine squeezes text to one printable line.
func oneLine(b []byte) string {
	b = bytes.TrimSpace(b)
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
}
