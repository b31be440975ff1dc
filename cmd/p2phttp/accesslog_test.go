package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/p2phttp/p2phttp/rendezvous"
)

func TestEscapeText(t *testing.T) {
	cases := map[string]string{
		"plain text, ünïcode ✓":   "plain text, ünïcode ✓",
		"\x1b[2J\x1b]0;title\x07": `\x1b[2J\x1b]0;title\x07`,
		"line\nbreak\r\ttab":      `line\x0abreak\x0d\x09tab`,
		"\u202eevil bidi\u200b":   `\u202eevil bidi\u200b`,
		"c1 \u009b31m":            `c1 \u009b31m`,
		"bad utf8 \xff\xfe":       `bad utf8 \xff\xfe`,
		`back\slash`:              `back\\slash`,
		"del \x7f":                `del \x7f`,
	}
	for in, want := range cases {
		assert.Equal(t, want, escapeText(in), "%q", in)
	}
	assert.Equal(t, `a b \x1b[31mred`, oneLine([]byte("  a\n\n b \x1b[31mred \n")))
}

func TestAccessLogLine(t *testing.T) {
	var out bytes.Buffer
	al := &accessLog{out: &out, peer: "203.0.113.7:4000", h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		w.Write([]byte("12345"))
	})}
	srv := httptest.NewServer(al)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/a%1bb?q=%0a")
	assert.NoError(t, err)
	resp.Body.Close()
	assert.Regexp(t, `^p2phttp: 203\.0\.113\.7:4000 GET /a%1bb\?q=%0a 418 5 bytes [0-9.]+[µm]?s\n$`, out.String())
	assert.EqualValues(t, 1, al.requests.Load())
	assert.EqualValues(t, 5, al.bytes.Load())
}

func TestDescribePathLeavesOutTheWait(t *testing.T) {
	r := rendezvous.Report{
		RemoteAddr: netip.MustParseAddrPort("198.51.100.9:4000"),
		RTT:        38 * time.Millisecond,
		Gather:     100 * time.Millisecond,
		Signal:     4*time.Minute + 21*time.Second,
		Punch:      200 * time.Millisecond,
		Stream:     120 * time.Millisecond,
		Total:      4*time.Minute + 21*time.Second + 420*time.Millisecond,
	}
	r.LocalCandidate.Kind, r.PeerCandidate.Kind = "srflx", "srflx"
	line := describePath(r)
	assert.True(t, strings.HasSuffix(line, ", rtt 38ms, set up in 420ms after waiting 4m21s for the peer"), line)
	r.Signal, r.Total = 50*time.Millisecond, 470*time.Millisecond
	assert.True(t, strings.HasSuffix(describePath(r), ", rtt 38ms, set up in 420ms"), describePath(r))
}

func TestVersion(t *testing.T) {
	env, stdout, stderr := testEnv(nil)
	for _, arg := range []string{"--version", "-version", "version"} {
		stdout.Reset()
		assert.Equal(t, exitOK, run(context.Background(), []string{arg}, env))
		assert.Regexp(t, `^p2phttp \S+.*, `+regexp.QuoteMeta(runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)+"\n$", stdout.String())
	}
	assert.Empty(t, stderr.String())
	// The built binary knows its commit.
	out, _, status := runBinary(t, 10*time.Second, "--version")
	assert.Equal(t, exitOK, status)
	assert.Regexp(t, `^p2phttp \(devel\)( commit [0-9a-f]{12}( \(modified\))?)?, go`, out) // no commit when built with -buildvcs=false
}
