package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/term"

	"github.com/p2phttp/p2phttp/signal"
)

// codeEnv is the environment variable that holds the code, so that it never has to be in argv, where every user of
// the machine can read it (ps, /proc/PID/cmdline).
const codeEnv = "P2PHTTP_CODE"

// maxCodeInput bounds a code read from stdin.
const maxCodeInput = 1024

// errInterrupted is Ctrl-C or Ctrl-D at the code prompt, where the terminal is in raw mode and sends no signal.
var errInterrupted = errors.New("interrupted")

// peerCode returns the code to meet with: arg when the user gave one on the command line (with a warning), else
// $P2PHTTP_CODE, else the answer to a prompt on a terminal, else the first line of stdin. It warns when the code
// looks like a mistyped one of the kind serve makes.
func peerCode(env *cliEnv, arg string) (string, error) {
	var code string
	switch {
	case arg != "":
		code = arg
	case strings.TrimSpace(env.getenv(codeEnv)) != "":
		code = strings.TrimSpace(env.getenv(codeEnv))
	case isTerminal(env.stdin) && isTerminal(env.stderr):
		f := env.stdin.(*os.File)
		state, err := term.MakeRaw(int(f.Fd()))
		if err != nil {
			return "", fmt.Errorf("cannot read the code from the terminal: %w", err)
		}
		code, err = promptCode(struct {
			io.Reader
			io.Writer
		}{f, env.stderr})
		term.Restore(int(f.Fd()), state)
		if err != nil {
			return "", err
		}
	default:
		line, err := bufio.NewReader(io.LimitReader(env.stdin, maxCodeInput)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("cannot read the code from stdin: %w", err)
		}
		code = strings.TrimSpace(line)
	}
	if signal.NormalizeCode(code) == "" {
		return "", usagef("no code: set %s=CODE, pipe the code on stdin, or run on a terminal to be asked for it", codeEnv)
	}
	if fix, ok := suggestCode(code); ok {
		fmt.Fprintf(env.stderr, "p2phttp: warning: %q does not look like a code serve makes; did you mean %s?\n",
			escapeText(code), fix)
	}
	parsed, err := parseCode(code)
	if err != nil {
		return "", err
	}
	if arg != "" {
		warnCodeInArgs(env)
	}
	return parsed, nil
}

func warnCodeInArgs(env *cliEnv) {
	fmt.Fprintf(env.stderr, "p2phttp: warning: other users of this machine can see a code on the command line; "+
		"set %s or let p2phttp ask for it\n", codeEnv)
}

// promptCode asks for the code on a terminal in raw mode; Tab completes the words of the code.
func promptCode(rw io.ReadWriter) (string, error) {
	t := term.NewTerminal(rw, "Code (Tab completes the words): ")
	t.AutoCompleteCallback = completeCode
	line, err := t.ReadLine()
	if errors.Is(err, io.EOF) {
		fmt.Fprint(rw, "\r\n")
		return "", errInterrupted
	}
	return line, err
}

// isCodeSeparator is what NormalizeCode folds into the '-' between the parts of a code.
func isCodeSeparator(r rune) bool { return unicode.IsSpace(r) || r == '-' || r == '_' || r == '.' }

// completeCode completes the word being typed at the end of line on Tab: the first word from the adjectives of
// signal.CodeWords, the second from its nouns, as far as the candidates agree.
func completeCode(line string, pos int, key rune) (string, int, bool) {
	if key != '\t' {
		return "", 0, false
	}
	if pos != len(line) {
		return line, pos, true
	}
	fields := strings.FieldsFunc(line, isCodeSeparator)
	word := ""
	if len(fields) > 0 && !strings.HasSuffix(line, " ") && !isCodeSeparator(rune(line[len(line)-1])) {
		word, fields = fields[len(fields)-1], fields[:len(fields)-1]
	}
	first, second := signal.CodeWords()
	var list []string
	switch len(fields) {
	case 1:
		list = first
	case 2:
		list = second
	default:
		return line, pos, true
	}
	var matches []string
	for _, w := range list {
		if strings.HasPrefix(w, strings.ToLower(word)) {
			matches = append(matches, w)
		}
	}
	if len(matches) == 0 {
		return line, pos, true
	}
	done := matches[0]
	for _, m := range matches[1:] {
		done = commonPrefix(done, m)
	}
	if len(matches) == 1 && len(fields) == 1 {
		done += "-"
	}
	line = line[:len(line)-len(word)] + done
	return line, len(line), true
}

func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

// suggestCode returns the code serve would have made that is closest to code, when code has the shape of one
// ("7-amber-otter") but a word that is not in the lists and is within two typos of one that is.
func suggestCode(code string) (string, bool) {
	parts := strings.Split(signal.NormalizeCode(code), "-")
	if len(parts) != 3 {
		return "", false
	}
	if _, err := strconv.Atoi(parts[0]); err != nil {
		return "", false
	}
	first, second := signal.CodeWords()
	changed := false
	for i, list := range [][]string{first, second} {
		w := parts[i+1]
		if slices.Contains(list, w) {
			continue
		}
		best, ok := closestName(w, list)
		if !ok {
			return "", false // a word of the user's own, not a typo
		}
		parts[i+1], changed = best, true
	}
	return strings.Join(parts, "-"), changed
}

// closestName returns the name in names nearest to s, for "did you mean": within one edit of a short s (four
// letters or fewer), two of a longer one, so that a word of the user's own is not taken for a typo.
func closestName(s string, names []string) (string, bool) {
	limit := 1
	if len(s) > 4 {
		limit = 2
	}
	best, bestDist := "", limit+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best, best != ""
}

// editDistance is the Levenshtein distance between a and b (bytes; codes and command names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
