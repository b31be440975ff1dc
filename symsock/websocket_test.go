package symsock

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// wsEcho is a WebSocket server that echoes every message.
func wsEcho(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("websocket.Accept: %v", err)
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
}

// wsRoundTrips sends three messages of growing size over a dialled WebSocket and checks the echoes.
func wsRoundTrips(t *testing.T, url string, client *http.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client})
	mustNil(t, err)
	defer c.CloseNow()
	eq(t, "status", res.StatusCode, http.StatusSwitchingProtocols)
	c.SetReadLimit(1 << 20)
	for _, n := range []int{1, 1000, 300 << 10} {
		msg := strings.Repeat("w", n)
		mustNil(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		typ, got, err := c.Read(ctx)
		mustNil(t, err)
		eq(t, "type", typ, websocket.MessageText)
		eq(t, "echo of a message of", len(got), n)
		eq(t, "echo", string(got) == msg, true)
	}
	mustNil(t, c.Close(websocket.StatusNormalClosure, "bye"))
}

func TestWebSocketSymsockServerNetHTTPClient(t *testing.T) {
	srv := startSymsockServer(t, wsEcho(t))
	wsRoundTrips(t, "ws"+strings.TrimPrefix(srv.URL, "http"), netHTTPClient(t))
}

func TestWebSocketSymsockBothEnds(t *testing.T) {
	srv := startSymsockServer(t, wsEcho(t))
	u, err := url.Parse(srv.URL)
	mustNil(t, err)
	conn, err := net.Dial("tcp", u.Host)
	mustNil(t, err)
	s := New(conn)
	t.Cleanup(func() { s.Close() })
	client := &http.Client{Transport: NewRoundTripper(s)}
	wsRoundTrips(t, "ws://"+u.Host+"/", client)
	// The RoundTripper's socket now belongs to the WebSocket.
	_, err = client.Get(srv.URL)
	mustIs(t, err, ErrHijacked)
}

func TestWebSocketSymsockClientNetHTTPServer(t *testing.T) {
	srv := httptest.NewServer(wsEcho(t))
	t.Cleanup(srv.Close)
	client, _ := roundTripClient(t, srv)
	wsRoundTrips(t, "ws"+strings.TrimPrefix(srv.URL, "http"), client)
}

// A reverse proxy served by symsock passes the upgrade through: it hijacks the symsock connection after the
// backend's 101, through a wrapping ResponseWriter that only offers Unwrap (as p2phttp's access log does).
func TestWebSocketThroughReverseProxyOnSymsock(t *testing.T) {
	backend := httptest.NewServer(wsEcho(t))
	t.Cleanup(backend.Close)
	target, err := url.Parse(backend.URL)
	mustNil(t, err)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	srv := startSymsockServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxy.ServeHTTP(unwrapOnly{w}, r)
	}))
	wsRoundTrips(t, "ws"+strings.TrimPrefix(srv.URL, "http"), netHTTPClient(t))
}

type unwrapOnly struct{ http.ResponseWriter }

func (u unwrapOnly) Unwrap() http.ResponseWriter { return u.ResponseWriter }

func TestServeEarlyHints(t *testing.T) {
	srv := startSymsockServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("final"))
	}))
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, http.StatusText(code)+": "+h.Get("Link"))
		return nil
	}}
	req := newReq(t, "GET", srv.URL, nil).WithContext(httptrace.WithClientTrace(context.Background(), trace))
	res, body := get(t, netHTTPClient(t), req)
	eq(t, "status", res.StatusCode, 200)
	eq(t, "body", body, "final")
	eq(t, "hints", strings.Join(hints, "|"), "Early Hints: </style.css>; rel=preload; as=style")
	eq(t, "final Link kept", res.Header.Get("Link"), "</style.css>; rel=preload; as=style")
}
