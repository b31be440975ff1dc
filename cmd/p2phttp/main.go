package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	ossignal "os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// Exit statuses, documented in the usage text.
const (
	exitOK          = 0
	exitFailure     = 1 // network, peer or file error
	exitUsage       = 2 // bad command line
	exitHTTPStatus  = 3 // get: the peer answered, but not with a 2xx status
	exitInterrupted = 130
)

// command is one subcommand: its name, one-line summary and what runs it.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

var commands = []command{
	{"signal", "run the signalling server with its STUN responder and TURN relay", runSignal},
	{"serve", "wait for a peer and answer its HTTP requests from a folder or a local web server", runServe},
	{"get", "fetch a path from a peer that runs serve", runGet},
	{"forward", "open a local HTTP endpoint whose connections are carried to the peer", runForward},
	{"demo", "signalling server, STUN and two peers in one process on loopback", runDemo},
	{"doctor", "tell what to expect before a meeting: UDP, the NAT's behaviour, the relay", runDoctor},
}

const mainUsage = `p2phttp lets two machines behind NATs talk HTTP to each other directly.

Usage:
  p2phttp COMMAND [flags] [arguments]

Commands:
%s
Run "p2phttp COMMAND --help" for a command's flags and examples.

Quick start, on three machines (or three terminals):
  p2phttp signal                                  # on a host both peers can reach
  p2phttp serve --dir ./public --signal http://SIGNAL-HOST:8080      # prints a code
  p2phttp get /index.html -O --signal http://SIGNAL-HOST:8080        # asks for the code

Environment:
  P2PHTTP_CODE     the code for get, forward and serve (else get and forward ask for it, or read it from stdin)
  P2PHTTP_SIGNAL   default for --signal (else http://127.0.0.1:8080)
  P2PHTTP_STUN     default for --stun (else the signalling host, port 3478)

Exit status: 0 success, 1 failure, 2 bad usage, 3 the peer answered get with a non-2xx status, 130 interrupted
(Ctrl-C; signal shuts down cleanly and exits 0). "p2phttp --version" prints the version.
`

func main() {
	ctx, stop := ossignal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &cliEnv{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, stdin: os.Stdin})
	stop()
	os.Exit(code)
}

// cliEnv is what a command may touch outside its arguments, so tests can run commands in-process too.
type cliEnv struct {
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
	getenv func(string) string
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, env *cliEnv) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 2 && args[0] == "help" {
			return run(ctx, []string{args[1], "--help"}, env)
		}
		if len(args) == 0 { // a mistake: usage to stderr, like a bad flag
			fmt.Fprintf(env.stderr, mainUsage, commandList())
			return exitUsage
		}
		fmt.Fprintf(env.stdout, mainUsage, commandList())
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		fmt.Fprintln(env.stdout, versionLine())
		return exitOK
	}
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		return report(ctx, env, c.name, err)
	}
	hint := ""
	if near, ok := closestName(args[0], names); ok {
		hint = fmt.Sprintf(" (did you mean %q?)", near)
	}
	fmt.Fprintf(env.stderr, "p2phttp: unknown command %q%s; run `p2phttp --help` for the list\n", escapeText(args[0]), hint)
	return exitUsage
}

// versionLine is what --version prints: the module version ("(devel)" when built from a checkout), the commit it was
// built from when known, the Go version and the platform.
func versionLine() string {
	version, commit, modified := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := "p2phttp " + version
	if commit != "" {
		line += " commit " + commit
		if modified {
			line += " (modified)"
		}
	}
	return line + ", " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

func commandList() string {
	s := ""
	for _, c := range commands {
		s += fmt.Sprintf("  %-8s %s\n", c.name, c.summary)
	}
	return s
}

// report prints err as one line and maps it to an exit status.
func report(ctx context.Context, env *cliEnv, name string, err error) int {
	var ue usageError
	var he httpStatusError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(env.stderr, "p2phttp %s: %s; run `p2phttp %s --help`\n", name, ue.msg, name)
		return exitUsage
	case errors.As(err, &he):
		fmt.Fprintf(env.stderr, "p2phttp: %s\n", he.Error())
		return exitHTTPStatus
	case ctx.Err() != nil && errors.Is(err, context.Canceled), errors.Is(err, errInterrupted):
		fmt.Fprintln(env.stderr, "p2phttp: interrupted")
		return exitInterrupted
	default:
		fmt.Fprintf(env.stderr, "p2phttp: %s\n", explain(err))
		return exitFailure
	}
}
