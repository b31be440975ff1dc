package main

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSignalHelpListsEveryLimit: each limit of signalserver.Config has a
// flag, shown with its default.
func TestSignalHelpListsEveryLimit(t *testing.T) {
	env, stdout, _ := testEnv(nil)
	run(context.Background(), []string{"signal", "--help"}, env)
	for _, f := range []string{"--redis URL", "--trusted-proxy", "--poll-wait", "--grace", "--meeting-ttl", "--max-messages",
		"--max-guests-per-nameplate", "--max-records", "--max-parked ", "--max-parked-per-ip ", "--max-parked-per-ipv6-net",
		"--rate-per-ip", "--rate-burst ", "--rate-per-ipv6-net", "--rate-burst-ipv6-net", "--room-rate-per-ip", "--room-burst",
		"--peer-rate", "--peer-burst", "--stun-alt", "--turn ", "--turn-public", "--turn-secret", "--turn-credential-ttl", "--turn-renew-for",
		"--turn-max-allocations ", "--turn-max-allocations-per-peer", "--turn-max-lifetime", "--turn-rate", "--turn-ports",
		"--turn-realm", "--turn-allow-private-peers", "--stun-rate-per-ip", "--stun-burst", "--limiter-slots", "--store-timeout", "--shutdown-timeout",
		"--read-header-timeout", "--read-timeout", "--write-timeout", "--idle-timeout", "--max-header-bytes"} {
		assert.Contains(t, stdout.String(), "  "+f, "help lacks %s", f)
	}
	assert.Contains(t, stdout.String(), "(default 16)")
}

func TestSignalBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"signal", "--max-parked", "0"}, "p2phttp signal: --max-parked must be positive; run `p2phttp signal --help`"},
		{[]string{"signal", "--grace", "-1s"}, "p2phttp signal: --grace must be positive; run `p2phttp signal --help`"},
		{[]string{"signal", "--turn-credential-ttl", "1s"}, "p2phttp signal: --turn-credential-ttl must be at least 2s, and --turn-renew-for positive; run `p2phttp signal --help`"},
		{[]string{"signal", "--trusted-proxy", "nope"}, `p2phttp signal: invalid value "nope" for flag -trusted-proxy: "nope" is not an address or CIDR prefix; run ` + "`p2phttp signal --help`"},
	} {
		env, _, stderr := testEnv(nil)
		assert.Equal(t, exitUsage, run(context.Background(), c.args, env), c.args)
		assert.Equal(t, c.want+"\n", stderr.String())
	}
}

// TestSignalRedisUnreachable: a Redis that is not there is a clear error at
// start, not a server that fails every request.
func TestSignalRedisUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	env, _, stderr := testEnv(nil)
	code := run(context.Background(), []string{"signal", "--http", "127.0.0.1:0", "--stun", "127.0.0.1:0", "--redis", "redis://" + addr + "/0"}, env)
	assert.NotEqual(t, 0, code)
	assert.True(t, strings.Contains(stderr.String(), "redis at "+addr) && strings.Contains(stderr.String(), "is Redis running"), stderr.String())
}
