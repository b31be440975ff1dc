package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runSignalInProcess runs `p2phttp signal` with args on loopback until the test ends; it returns the HTTP URL and
// the STUN address.
func runSignalInProcess(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	httpAddr := freeAddr(t, "tcp")
	// STUN, its second port and TURN take three consecutive ports: find a free run of them.
	var stunAddr string
	for range 50 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		if port+2 > 65535 {
			continue
		}
		free := true
		for p := port; p <= port+2 && free; p++ {
			a := "127.0.0.1:" + strconv.Itoa(p)
			u, uerr := net.ListenPacket("udp4", a)
			l, terr := net.Listen("tcp4", a)
			free = uerr == nil && terr == nil
			if u != nil {
				u.Close()
			}
			if l != nil {
				l.Close()
			}
		}
		if free {
			stunAddr = "127.0.0.1:" + strconv.Itoa(port)
			break
		}
	}
	require.NotEmpty(t, stunAddr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	env, _, stderr := testEnv(map[string]string{"P2PHTTP_TURN_SECRET": "doctor test"})
	go func() {
		done <- run(ctx, append([]string{"signal", "--http", httpAddr, "--stun", stunAddr}, extra...), env)
	}()
	t.Cleanup(func() {
		cancel()
		assert.Equal(t, exitOK, <-done, stderr.String())
	})
	url := "http://" + httpAddr
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(url + "/healthz")
		if err == nil {
			res.Body.Close()
			break
		}
		require.True(t, time.Now().Before(deadline), "the signalling server did not come up: %v", err)
		time.Sleep(20 * time.Millisecond)
	}
	return url, stunAddr
}

func doctorJSON(t *testing.T, args ...string) (doctorReport, int) {
	t.Helper()
	env, stdout, stderr := testEnv(nil)
	code := run(context.Background(), append([]string{"doctor", "--json"}, args...), env)
	var rep doctorReport
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), "stdout %q, stderr %q", stdout, stderr)
	return rep, code
}

// On loopback the doctor finds the signalling server, UDP without NAT, the relay over UDP and TCP, and says direct
// connections are likely; its text says the same for a person.
func TestDoctorLoopback(t *testing.T) {
	url, stun := runSignalInProcess(t)
	rep, code := doctorJSON(t, "--signal", url, "--stun", stun)
	assert.Equal(t, exitOK, code)
	assert.True(t, rep.Signal.Reachable)
	assert.True(t, rep.UDP.Reachable, rep.UDP.Error)
	assert.Equal(t, "no NAT", rep.UDP.Mapping)
	assert.Equal(t, "address-dependent or open", rep.UDP.Filtering)
	assert.True(t, strings.HasPrefix(rep.UDP.Public, "127.0.0.1:"), rep.UDP.Public)
	require.Len(t, rep.Relays, 2)
	host, port, _ := net.SplitHostPort(stun)
	p, _ := strconv.Atoi(port)
	turn := net.JoinHostPort(host, strconv.Itoa(p+2))
	for i, tr := range []string{"udp", "tcp"} {
		assert.Equal(t, "turn:"+turn+"?transport="+tr, rep.Relays[i].URL)
		assert.Equal(t, tr, rep.Relays[i].Transport)
		assert.True(t, rep.Relays[i].Reachable, rep.Relays[i].Error)
	}
	assert.Equal(t, verdictDirect, rep.Verdict)

	env, stdout, _ := testEnv(nil)
	require.Equal(t, exitOK, run(context.Background(), []string{"doctor", "--signal", url, "--stun", stun}, env))
	out := stdout.String()
	for _, want := range []string{"signalling server   " + url + ": reachable", "UDP                 STUN at " + stun + " answered",
		"NAT                 none", "relay over UDP      turn:" + turn + "?transport=udp answered",
		"relay over TCP      turn:" + turn + "?transport=tcp answered", "verdict: direct connections likely\n"} {
		assert.Contains(t, out, want)
	}
}

// UDP that gets no answer (here: a STUN address where nothing answers) leaves the relay over TCP; a server without
// a relay says so; an unreachable signalling server is exit status 1.
func TestDoctorVerdicts(t *testing.T) {
	url, _ := runSignalInProcess(t)
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	rep, code := doctorJSON(t, "--signal", url, "--stun", silent.LocalAddr().String())
	assert.Equal(t, exitOK, code, "it could test: the findings are the answer")
	assert.False(t, rep.UDP.Reachable)
	assert.Contains(t, rep.UDP.Error, "no answer over UDP")
	assert.Equal(t, verdictRelay, rep.Verdict, "the relay answers over UDP where STUN does not")

	urlOff, stunOff := runSignalInProcess(t, "--turn=")
	rep, code = doctorJSON(t, "--signal", urlOff, "--stun", stunOff)
	assert.Equal(t, exitOK, code)
	assert.Empty(t, rep.Relays)
	assert.Equal(t, verdictDirect, rep.Verdict, "no NAT needs no relay")
	rep, _ = doctorJSON(t, "--signal", urlOff, "--stun", silent.LocalAddr().String())
	assert.Equal(t, verdictNoRelayPfx+"the signalling server offers none (and no UDP: "+rep.UDP.Error+")", rep.Verdict)

	closed := freeAddr(t, "tcp")
	rep, code = doctorJSON(t, "--signal", "http://"+closed)
	assert.Equal(t, exitFailure, code)
	assert.False(t, rep.Signal.Reachable)
	assert.Contains(t, rep.Signal.Error, "connection refused")
}

// The verdict follows the NAT's behaviour and the relay's reachability.
func TestDoctorVerdictTable(t *testing.T) {
	relays := func(udp, tcp bool) []relayCheck {
		return []relayCheck{{URL: "turn:a", Transport: "udp", Reachable: udp, Error: "x"}, {URL: "turn:a", Transport: "tcp", Reachable: tcp, Error: "y"}}
	}
	for _, c := range []struct {
		mapping, filtering string
		udp                bool
		relays             []relayCheck
		want               string
	}{
		{"endpoint-independent", "address-dependent or open", true, relays(true, true), verdictDirect},
		{"endpoint-independent", "address-and-port-dependent", true, relays(true, true), verdictDirect},
		{"unknown", "unknown", true, relays(true, true), verdictMostDirect},
		{"destination-dependent", "address-and-port-dependent", true, relays(true, false), verdictHardNAT},
		{"destination-dependent", "address-and-port-dependent", true, relays(false, false),
			verdictNoRelayPfx + "turn:a over udp: x; turn:a over tcp: y; with this NAT, a peer behind another symmetric NAT cannot connect"},
		{"", "", false, relays(false, true), verdictTCPRelay},
		{"", "", false, relays(true, true), verdictRelay},
	} {
		var rep doctorReport
		rep.UDP.Reachable, rep.UDP.Mapping, rep.UDP.Filtering, rep.Relays = c.udp, c.mapping, c.filtering, c.relays
		assert.Equal(t, c.want, verdict(&rep), "%+v", c)
	}
}
