package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
)

// TestLoopback meets a host and a guest through a signalling server on loopback and checks both reports: the guest
// timed every round trip, the host echoed them all (and the untimed first one) and ended when the guest did.
func TestLoopback(t *testing.T) {
	srv, err := rendezvoustest.NewServer(rendezvoustest.Unlimited())
	require.NoError(t, err)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := options{signalURL: srv.URL, stunAddr: srv.STUNAddr, code: "7-p2prr-test", n: 30, size: 100}
	var hostOut, guestOut bytes.Buffer
	hosted := make(chan error, 1)
	go func() {
		o := base
		o.role = "host"
		hosted <- run(ctx, o, json.NewEncoder(&hostOut))
	}()
	o := base
	o.role = "guest"
	// The host may not hold the nameplate yet: retry the meeting until it does.
	var gerr error
	for range 20 {
		guestOut.Reset()
		if gerr = run(ctx, o, json.NewEncoder(&guestOut)); gerr == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, gerr)
	require.NoError(t, <-hosted)

	var g report
	require.NoError(t, json.Unmarshal(guestOut.Bytes(), &g))
	assert.Equal(t, "done", g.Event)
	assert.Equal(t, 30, g.N)
	assert.Positive(t, g.MinUS)
	assert.LessOrEqual(t, g.MedianUS, g.MaxUS)
	assert.Contains(t, g.Route, "direct path")

	dec := json.NewDecoder(&hostOut)
	var hosting, done map[string]any
	require.NoError(t, dec.Decode(&hosting))
	assert.Equal(t, "hosting", hosting["event"])
	require.NoError(t, dec.Decode(&done))
	assert.Equal(t, "done", done["event"])
	assert.EqualValues(t, 31, done["echoed"])
}

func TestBadOptions(t *testing.T) {
	ok := options{role: "guest", signalURL: "http://127.0.0.1:1", code: "7-a-b", n: 1, size: 100}
	for name, mutate := range map[string]func(*options){
		"role":   func(o *options) { o.role = "both" },
		"signal": func(o *options) { o.signalURL = "" },
		"code":   func(o *options) { o.code = "" },
		"n":      func(o *options) { o.n = 0 },
		"size":   func(o *options) { o.size = 0 },
	} {
		o := ok
		mutate(&o)
		err := run(context.Background(), o, json.NewEncoder(&bytes.Buffer{}))
		assert.Error(t, err, name)
	}
}
