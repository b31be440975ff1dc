package signal

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testCode is shared by most tests: rooms are per server, and the slow KDF
// result is cached per process, so tests pay it once.
const testCode = "7-amber-otter"

type testServer struct {
	*Server
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port
	stop func() error
}

// startServer runs a real Server with Serve on a loopback listener.
func startServer(t testing.TB, cfg ServerConfig) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	ts := &testServer{Server: s, URL: "http://" + l.Addr().String(), Addr: l.Addr().String()}
	var stopped bool
	var stopErr error
	ts.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-done
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func cands(ports ...uint16) []Candidate {
	var cs []Candidate
	for _, p := range ports {
		cs = append(cs, Candidate{Kind: KindHost, Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p)})
	}
	return cs
}

// rawOffer is a well-formed offer JSON with a made-up MAC (the server cannot
// check MACs) for peer id n.
func rawOffer(n int) string {
	return fmt.Sprintf(`{"version":1,"peer_id":"%032x","candidates":[{"kind":"host","addr":"127.0.0.1:%d"}],"mac":"%s"}`,
		n, 1000+n, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
}

func roomHex(n int) string { return fmt.Sprintf("%064x", n) }

// rawResponse is what rawDo read back.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
	Error  string // the "error" field of a JSON error body
	Close  bool   // Connection: close
}

// rawDo writes raw bytes to the server and reads one response.
func rawDo(t testing.TB, addr, raw string) rawResponse {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readRaw(t, bufio.NewReader(c))
}

func readRaw(t testing.TB, br *bufio.Reader) rawResponse {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return toRaw(res, body)
}

func toRaw(res *http.Response, body []byte) rawResponse {
	rr := rawResponse{Status: res.StatusCode, Header: res.Header, Body: body, Close: res.Close}
	var e errorBody
	if json.Unmarshal(body, &e) == nil {
		rr.Error = e.Error
	}
	return rr
}

func postRaw(room, body string) string {
	return "POST /v1/rooms/" + room + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// asyncPost posts raw in the background and returns the response channel.
func asyncPost(t testing.TB, addr, raw string) <-chan rawResponse {
	ch := make(chan rawResponse, 1)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			ch <- rawResponse{Status: -1, Error: err.Error()}
			return
		}
		body, _ := io.ReadAll(res.Body)
		ch <- toRaw(res, body)
	}()
	return ch
}

func recv(t testing.TB, ch <-chan rawResponse) rawResponse {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("no response")
		return rawResponse{}
	}
}

// metric returns the value of one sample line of /metrics ("name" or
// `name{label="v"}`), or -1 if absent.
func metric(t testing.TB, s *testServer, sample string) float64 {
	t.Helper()
	r := rawDo(t, s.Addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}

// waitMetric polls until a metric has the wanted value.
func waitMetric(t testing.TB, s *testServer, sample string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := metric(t, s, sample)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", sample, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
