package signalserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/pion/stun/v2"

	"github.com/p2phttp/p2phttp/signal"
)

// BenchmarkMeet measures a whole meeting on the in-memory server over real
// loopback HTTP: a host claims a nameplate (and parks), a guest meets it,
// the host's poll returns the meeting, each side sends a message and
// receives the other's, and both close.
func BenchmarkMeet(b *testing.B) {
	cfg := testConfig()
	cfg.MaxParkedPerIP, cfg.MaxParkedPerIPv6Net, cfg.MaxParked = 1<<20, 1<<20, 1<<20
	ts := startServer(b, cfg)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	do := func(pattern, arg string, body any, want int) []byte {
		data, _ := json.Marshal(body)
		res, err := hc.Post(ts.URL+signal.ExpandPath(pattern, arg), "application/json", bytes.NewReader(data))
		if err != nil {
			b.Error(err)
			return nil
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			b.Errorf("%s: %d %s", pattern, res.StatusCode, out)
		}
		return out
	}
	var plate atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			np := fmt.Sprint(plate.Add(1)%99999 + 1)
			host, guest := signal.NewPeerID(), signal.NewPeerID()
			hostDone := make(chan []byte)
			go func() { hostDone <- do(signal.HostPath, np, hostReq(host), 200) }()
			var g signal.GuestResponse
			for g.Meeting == "" && !b.Failed() {
				json.Unmarshal(do(signal.GuestPath, np, guestReq(guest), 200), &g)
			}
			<-hostDone
			do(signal.SendPath, g.Meeting, signal.SendRequest{PeerID: guest, Body: []byte("g")}, 200)
			do(signal.SendPath, g.Meeting, signal.SendRequest{PeerID: host, Body: []byte("h")}, 200)
			do(signal.RecvPath, g.Meeting, signal.RecvRequest{PeerID: host}, 200)
			do(signal.RecvPath, g.Meeting, signal.RecvRequest{PeerID: guest}, 200)
			do(signal.ClosePath, g.Meeting, signal.CloseRequest{PeerID: host}, 200)
			do(signal.ClosePath, g.Meeting, signal.CloseRequest{PeerID: guest}, 200)
			do(signal.ReleasePath, np, signal.ReleaseRequest{PeerID: host}, 200)
		}
	})
}

func BenchmarkAnswerSTUN(b *testing.B) {
	s := New(Config{STUNRatePerIP: -1})
	raw := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw
	from := netip.MustParseAddrPort("192.0.2.1:5000")
	req, res := new(stun.Message), new(stun.Message)
	b.ReportAllocs()
	for b.Loop() {
		if _, reason := s.answerSTUN(raw, from, netip.AddrPort{}, req, res); reason != "" {
			b.Fatal(reason)
		}
	}
}
