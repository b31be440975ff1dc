package symsock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNotifyPeerGoneStates(t *testing.T) {
	s, peer := newPair(t)
	require.ErrorIs(t, s.NotifyPeerGone(func() {}), ErrOutOfOrder) // no request yet
	serverGot(t, s, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n")
	require.ErrorIs(t, s.NotifyPeerGone(func() {}), ErrOutOfOrder) // body unread
	send(t, peer, "ping")
	var req Request
	readWhole(t, s, &req, ReadFinished)
	gone := make(chan struct{})
	require.NoError(t, s.NotifyPeerGone(func() { close(gone) }))
	require.ErrorIs(t, s.NotifyPeerGone(func() {}), ErrOutOfOrder) // already watching
	// The response goes out while the watch reads; the next request stops it and is read whole.
	require.NoError(t, s.WriteResponse(&Response{Status: 204}))
	expectWire(t, peer, "HTTP/1.1 204 No Content\r\n\r\n")
	deadline := time.Now().Add(testTimeout)
	require.NoError(t, s.SetReadDeadline(deadline))
	send(t, peer, r0)
	require.NoError(t, s.ReadRequest(&req))
	require.Equal(t, "/", req.Target, "target")
	select {
	case <-gone:
		t.Fatal("gone called for a live peer")
	default:
	}
}
