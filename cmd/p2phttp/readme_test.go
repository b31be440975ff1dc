package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadmeTwoMachines checks that the README's "Two machines" commands work when pasted: the install line
// installs a p2phttp that the rest calls by that name, every documented flag exists, and no command puts a code in
// argv.
func TestReadmeTwoMachines(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Two machines\n")
	require.True(t, ok)
	section, _, _ = strings.Cut(section, "\n## ")
	var lines []string
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		lines = append(lines, strings.Split(strings.TrimSpace(block[1]), "\n")...)
	}
	require.NotEmpty(t, lines)
	assert.Equal(t, "go install ./cmd/p2phttp", lines[0], "installed first, under the name the commands use")
	code := regexp.MustCompile(`\b\d+-[a-z]+-[a-z]+\b`)

	// The install line does what it says.
	gobin := t.TempDir()
	install := exec.Command("go", "install", "./cmd/p2phttp")
	install.Dir = "../.."
	install.Env = append(os.Environ(), "GOBIN="+gobin)
	out, err := install.CombinedOutput()
	require.NoError(t, err, "%s", out)
	installed := filepath.Join(gobin, "p2phttp")
	require.FileExists(t, installed)

	ran := 0
	for _, line := range lines {
		cmd, comment, _ := strings.Cut(line, "#")
		cmd = strings.TrimSpace(cmd)
		assert.NotContains(t, line, "./p2phttp", "call the installed p2phttp")
		if strings.HasPrefix(strings.TrimSpace(comment), "p2phttp get") || strings.HasPrefix(strings.TrimSpace(comment), "p2phttp forward") {
			assert.NotRegexp(t, code, comment, "the command serve suggests keeps the code out of argv")
		}
		if !strings.HasPrefix(cmd, "p2phttp ") {
			continue
		}
		assert.NotRegexp(t, code, cmd, "no code in argv")
		args := strings.Fields(cmd)[1:]
		if args[0] != "--version" {
			args = append(args, "--help") // parses every flag before it, then prints the help instead of running
		}
		p := exec.Command(installed, args...)
		p.Env = append(os.Environ(), "P2PHTTP_SIGNAL=", "P2PHTTP_CODE=")
		p.WaitDelay = 10 * time.Second
		out, err := p.CombinedOutput()
		assert.NoError(t, err, "%s: %s", cmd, out)
		ran++
	}
	assert.GreaterOrEqual(t, ran, 5, "signal, serve, get, forward and --version")
}
