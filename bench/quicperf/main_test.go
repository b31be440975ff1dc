package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// freeUDPPort returns a loopback UDP port nobody holds right now.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// TestLoopback punches and moves bytes between a sender and a receiver on loopback and checks the receiver's
// file and both reports.
func TestLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sendAddr, recvAddr := freeUDPPort(t), freeUDPPort(t)
	const size = 3<<20 + 17
	out := filepath.Join(t.TempDir(), "got")
	var sendReport, recvReport bytes.Buffer
	sent := make(chan error, 1)
	go func() {
		sent <- run(ctx, options{role: "send", peer: recvAddr, bind: sendAddr, bytes: size}, json.NewEncoder(&sendReport))
	}()
	if err := run(ctx, options{role: "recv", peer: sendAddr, bind: recvAddr, out: out}, json.NewEncoder(&recvReport)); err != nil {
		t.Fatalf("recv: %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(io.LimitReader(rand.NewChaCha8([32]byte{'q', 'u', 'i', 'c'}), size))
	if !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, not the %d sent", len(got), len(want))
	}
	for _, r := range []struct {
		name string
		buf  *bytes.Buffer
	}{{"send", &sendReport}, {"recv", &recvReport}} {
		var res result
		if err := json.Unmarshal(r.buf.Bytes(), &res); err != nil {
			t.Fatalf("%s report %q: %v", r.name, r.buf, err)
		}
		if res.Event != "done" || res.Role != r.name || res.Bytes != size || res.CPUSeconds <= 0 || res.Seconds <= 0 {
			t.Errorf("%s report: %+v", r.name, res)
		}
	}
}

func TestOptionErrors(t *testing.T) {
	ctx := context.Background()
	for _, o := range []options{
		{role: "both", peer: "127.0.0.1:1", bind: "127.0.0.1:0"},
		{role: "send", bind: "127.0.0.1:0"},
		{role: "recv", peer: "not an address", bind: "127.0.0.1:0"},
	} {
		if err := run(ctx, o, json.NewEncoder(io.Discard)); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
