package symhttp

import (
	"context"
	"fmt"
	"io"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/symsock"
)

// wsEcho is a WebSocket server that echoes every message.
func wsEcho(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if !assert.NoError(t, err, "websocket.Accept") {
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
	require.NoError(t, err)
	defer c.CloseNow()
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode, "status")
	c.SetReadLimit(1 << 20)
	for _, n := range []int{1, 1000, 300 << 10} {
		msg := strings.Repeat("w", n)
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		typ, got, err := c.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, websocket.MessageText, typ, "type")
		require.Equal(t, n, len(got), "echo of a message of")
		require.Equal(t, true, string(got) == msg, "echo")
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, "bye"))
}

func TestWebSocketSymsockServerNetHTTPClient(t *testing.T) {
	srv := startSymsockServer(t, wsEcho(t))
	wsRoundTrips(t, "ws"+strings.TrimPrefix(srv.URL, "http"), netHTTPClient(t))
}

func TestWebSocketSymsockBothEnds(t *testing.T) {
	srv := startSymsockServer(t, wsEcho(t))
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	s := symsock.New(conn)
	t.Cleanup(func() { s.Close() })
	client := &http.Client{Transport: NewRoundTripper(s)}
	wsRoundTrips(t, "ws://"+u.Host+"/", client)
	// The RoundTripper's socket now belongs to the WebSocket.
	_, err = client.Get(srv.URL)
	require.ErrorIs(t, err, symsock.ErrHijacked)
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
	srv := proxyOnSymsock(t, backend)
	wsRoundTrips(t, "ws"+strings.TrimPrefix(srv.URL, "http"), netHTTPClient(t))
}

// proxyOnSymsock serves an httputil.ReverseProxy to backend with symsock, through a wrapping ResponseWriter that
// only offers Unwrap (as p2phttp's access log does), as `p2phttp serve --proxy` does.
func proxyOnSymsock(t *testing.T, backend *httptest.Server) *symsockServer {
	t.Cleanup(backend.Close)
	target, err := url.Parse(backend.URL)
	require.NoError(t, err)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	return startSymsockServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxy.ServeHTTP(unwrapOnly{w}, r)
	}))
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
	require.Equal(t, 200, res.StatusCode, "status")
	require.Equal(t, "final", body, "body")
	require.Equal(t, "Early Hints: </style.css>; rel=preload; as=style", strings.Join(hints, "|"), "hints")
	require.Equal(t, "</style.css>; rel=preload; as=style", res.Header.Get("Link"), "final Link kept")
}

// A reverse proxy served by symsock passes the web server's 103 Early Hints on before the final response.
func TestEarlyHintsThroughReverseProxyOnSymsock(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.js>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "page")
	}))
	srv := proxyOnSymsock(t, backend)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}}
	req := newReq(t, "GET", srv.URL, nil).WithContext(httptrace.WithClientTrace(context.Background(), trace))
	res, body := get(t, netHTTPClient(t), req)
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "page", body)
	require.Equal(t, []string{"103 </app.js>; rel=preload"}, hints)
}
