package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompleteCode(t *testing.T) {
	cases := []struct{ line, want string }{
		{"7-amb", "7-amber-"}, // one adjective: completed, and on to the noun
		{"7-amber-ott", "7-amber-otter"},
		{"7 amber ott", "7 amber otter"}, // spaces separate as well as dashes
		{"7-Amb", "7-amber-"},
		{"7-bl", "7-bl"},             // black, bland, blank, blond, blue: no common letters to add
		{"7-bla", "7-bla"},           // black, bland, blank
		{"7-blan", "7-blan"},         // bland, blank
		{"7-amber-be", "7-amber-be"}, // bear, beaver, bee, beetle
		{"7-amber-bea", "7-amber-bea"},
		{"7-amber-beav", "7-amber-beaver"},
		{"7-zzz", "7-zzz"}, // no such word: unchanged
		{"7", "7"},         // the number is not completed
		{"7-amber-otter-x", "7-amber-otter-x"},
	}
	for _, c := range cases {
		got, pos, ok := completeCode(c.line, len(c.line), '\t')
		assert.True(t, ok, c.line)
		assert.Equal(t, c.want, got, c.line)
		assert.Equal(t, len(got), pos, c.line)
	}
	_, _, ok := completeCode("7-amb", 5, 'x')
	assert.False(t, ok, "only Tab completes")
	got, pos, ok := completeCode("7-amb", 2, '\t')
	assert.True(t, ok)
	assert.Equal(t, "7-amb", got, "Tab in the middle of the line changes nothing")
	assert.Equal(t, 2, pos)
}

func TestPromptCodeCompletesWords(t *testing.T) {
	var out bytes.Buffer
	code, err := promptCode(struct {
		io.Reader
		io.Writer
	}{strings.NewReader("7-amb\tott\t\r"), &out})
	require.NoError(t, err)
	assert.Equal(t, "7-amber-otter", code)
	assert.Contains(t, out.String(), "Code (Tab completes the words): ")

	// Ctrl-C at the prompt (raw mode: no SIGINT) interrupts.
	_, err = promptCode(struct {
		io.Reader
		io.Writer
	}{strings.NewReader("7-am\x03"), io.Discard})
	assert.ErrorIs(t, err, errInterrupted)
	env, _, stderr := testEnv(nil)
	assert.Equal(t, exitInterrupted, report(context.Background(), env, "get", err))
	assert.Equal(t, "p2phttp: interrupted\n", stderr.String())
}

func TestSuggestCode(t *testing.T) {
	cases := []struct {
		code, want string
		ok         bool
	}{
		{"7-ambr-otter", "7-amber-otter", true},
		{"7-amber-oter", "7-amber-otter", true},
		{"7 Ambr Oterr", "7-amber-otter", true},
		{"7-amber-otter", "", false},        // right already
		{"7-correct-horse", "", false},      // words of the user's own
		{"my-own-secret-phrase", "", false}, // not the shape of a code
		{"x-ambr-otter", "", false},
		{"7-ambr-battery", "", false}, // one word far from every noun: the user's own code
	}
	for _, c := range cases {
		got, ok := suggestCode(c.code)
		assert.Equal(t, c.ok, ok, c.code)
		if c.ok {
			assert.Equal(t, c.want, got, c.code)
		}
	}
}

func TestPeerCodeSources(t *testing.T) {
	// From the command line: works, with a warning.
	env, _, stderr := testEnv(map[string]string{codeEnv: "1-from-env"})
	code, err := peerCode(env, "2-from-args")
	require.NoError(t, err)
	assert.Equal(t, "2-from-args", code)
	assert.Equal(t, "p2phttp: warning: other users of this machine can see a code on the command line; set P2PHTTP_CODE or let p2phttp ask for it\n", stderr.String())

	// The environment, then stdin.
	code, err = peerCode(env, "")
	require.NoError(t, err)
	assert.Equal(t, "1-from-env", code)
	env, _, stderr = testEnv(nil)
	env.stdin = strings.NewReader("  7-amber-otter \nmore lines\n")
	code, err = peerCode(env, "")
	require.NoError(t, err)
	assert.Equal(t, "7-amber-otter", code)
	assert.Empty(t, stderr.String())

	// A typo gets a hint; the code is used as typed (it may be the other side's own).
	env, _, stderr = testEnv(nil)
	env.stdin = strings.NewReader("7-ambr-otter")
	code, err = peerCode(env, "")
	require.NoError(t, err)
	assert.Equal(t, "7-ambr-otter", code)
	assert.Equal(t, "p2phttp: warning: \"7-ambr-otter\" does not look like a code serve makes; did you mean 7-amber-otter?\n", stderr.String())

	env, _, _ = testEnv(nil)
	env.stdin = strings.NewReader("\n")
	_, err = peerCode(env, "")
	var ue usageError
	assert.ErrorAs(t, err, &ue)
}

func TestGetReadsTheCodeFromStdin(t *testing.T) {
	srv := testServer(t)
	env, stdout, stderr := testEnv(nil)
	env.stdin = strings.NewReader("3-quiet-wren\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status := run(ctx, append([]string{"get", "/x", "--wait", "500ms"}, peerArgs(srv)...), env)
	assert.Equal(t, exitFailure, status)
	assert.Empty(t, stdout.String())
	assert.Equal(t, "p2phttp: waiting for the peer with code 3-quiet-wren at "+srv.URL+"\n"+
		`p2phttp: nobody serves code "3-quiet-wren" (waited 500ms); run `+"`p2phttp serve`"+` on the other side, check the code and --signal `+srv.URL+", or raise --wait\n",
		stderr.String())
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"serve", "serv", 1}, {"amber", "ambre", 2}, {"kitten", "sitting", 3}} {
		assert.Equal(t, c.d, editDistance(c.a, c.b), c.a+"/"+c.b)
		assert.Equal(t, c.d, editDistance(c.b, c.a), c.b+"/"+c.a)
	}
}
