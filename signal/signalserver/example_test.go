package signalserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

// A server in the process, mounted on an httptest.Server: a host claims
// nameplate 7 and is between polls; a guest then meets it at once.
func Example() {
	srv := signalserver.New(signalserver.Config{PollWait: 100e6}) // 100 ms polls for the example
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()

	post := func(pattern, arg string, body any) *http.Response {
		b, _ := json.Marshal(body)
		res, err := http.Post(ts.URL+signal.ExpandPath(pattern, arg), "application/json", bytes.NewReader(b))
		if err != nil {
			panic(err)
		}
		return res
	}
	host, guest := signal.NewPeerID(), signal.NewPeerID()
	res := post(signal.HostPath, "7", signal.HostRequest{Version: signal.Version, PeerID: host})
	fmt.Println("host:", res.Status)
	res = post(signal.GuestPath, "7", signal.GuestRequest{Version: signal.Version, PeerID: guest})
	var g signal.GuestResponse
	json.NewDecoder(res.Body).Decode(&g)
	fmt.Println("guest:", res.Status, signal.ValidateMeetingID(g.Meeting) == nil)
	res = post(signal.HostPath, "7", signal.HostRequest{Version: signal.Version, PeerID: host})
	var h signal.HostResponse
	json.NewDecoder(res.Body).Decode(&h)
	fmt.Println("host:", res.Status, h.Meetings[0] == g.Meeting)
	// Output:
	// host: 202 Accepted
	// guest: 200 OK true
	// host: 200 OK true
}
