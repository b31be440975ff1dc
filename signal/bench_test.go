package signal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/pion/stun/v2"
)

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
}

func benchPost(b *testing.B, hc *http.Client, url string, body []byte) {
	res, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Errorf("status %d", res.StatusCode)
	}
}

// runMeets does b.N meetings over real loopback HTTP: in each, one peer
// posts (and usually parks), the other posts, and both read their answers.
func runMeets(b *testing.B, base string) {
	hc := benchClient()
	var room atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			url := fmt.Sprintf("%s/v1/rooms/%064x", base, room.Add(1))
			done := make(chan struct{})
			go func() {
				benchPost(b, hc, url, []byte(rawOffer(1)))
				close(done)
			}()
			benchPost(b, hc, url, []byte(rawOffer(2)))
			<-done
		}
	})
}

// BenchmarkMeet measures the whole meet path of Server on loopback.
// BenchmarkMeetBaselineNetHTTP does the same two requests per op against a
// bare net/http handler that only decodes the offer and answers it: the
// ratio of the two is the signalling server's own cost.
func BenchmarkMeet(b *testing.B) {
	s := startServer(b, ServerConfig{RatePerIP: -1, MaxWaiting: 1 << 20, MaxRooms: 1 << 20})
	runMeets(b, s.URL)
}

func BenchmarkMeetBaselineNetHTTP(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var o Offer
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &o)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer{Room: r.URL.Path, Peer: o})
	})}
	go hs.Serve(l)
	defer hs.Close()
	runMeets(b, "http://"+l.Addr().String())
}

func BenchmarkDecodeOffer(b *testing.B) {
	data := []byte(rawOffer(1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeOffer(data, DefaultMaxCandidates); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnswerSTUN(b *testing.B) {
	s := NewServer(ServerConfig{RatePerIP: -1})
	raw := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw
	from := netip.MustParseAddrPort("192.0.2.1:5000")
	req, res := new(stun.Message), new(stun.Message)
	b.ReportAllocs()
	for b.Loop() {
		if reason := s.answerSTUN(raw, from, req, res); reason != "" {
			b.Fatal(reason)
		}
	}
}
