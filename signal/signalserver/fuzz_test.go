package signalserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/stretchr/testify/require"
)

// FuzzRequest throws arbitrary paths and bodies at a server: every answer is
// a JSON object with a known status, never a panic or a hang.
func FuzzRequest(f *testing.F) {
	id := signal.NewPeerID()
	m := signal.NewMeetingID()
	for _, seed := range []struct{ path, body string }{
		{"/v2/nameplates/7/host", `{"version":2,"peer_id":"` + id + `"}`},
		{"/v2/nameplates/7/guest", `{"version":2,"peer_id":"` + id + `"}`},
		{"/v2/nameplates/7/release", `{"peer_id":"` + id + `"}`},
		{"/v2/meetings/" + m + "/send", `{"peer_id":"` + id + `","seq":0,"body":"aGk="}`},
		{"/v2/meetings/" + m + "/recv", `{"peer_id":"` + id + `","after":0}`},
		{"/v2/meetings/" + m + "/close", `{"peer_id":"` + id + `"}`},
		{"/v2/nameplates/0/host", `{}`},
		{"/v2/meetings/x/send", `{"seq":-1}`},
	} {
		f.Add(seed.path, seed.body)
	}
	cfg := testConfig()
	cfg.PollWait = time.Millisecond // a recorder cannot be hijacked: polls wait in the handler
	s := New(cfg)
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, path, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest("POST", "http://x"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		require.Contains(t, []int{200, 202, 400, 403, 404, 405, 409, 410, 413, 429, 503}, w.Code, "%s %q: status", path, body)
		var v map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v), "%s %q: %d with a body that is not a JSON object: %q", path, body, w.Code, w.Body.String())
	})
}
