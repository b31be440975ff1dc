package symsock

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// peerWatch is a background read that notices the peer leaving while a server works on its response.
type peerWatch struct {
	done     chan struct{}
	stopping atomic.Bool
}

// aLongTimeAgo is a read deadline in the past: it makes a blocked Read return at once.
var aLongTimeAgo = time.Unix(1, 0)

// NotifyPeerGone calls gone, once, if the peer closes the connection or it fails while the server prepares its
// response, so that the work can stop (Serve cancels the request's context with it). It is valid on a server
// whose request is read to the end (read state "finished"), and fails with ErrOutOfOrder otherwise.
//
// It reads in the background until the next operation that reads (ReadRequest, ReadSome, a BodyReader, Hijack),
// which stops it first. Bytes that arrive meanwhile (a pipelined request) are kept for that operation and end the
// watch without calling gone; so does a read deadline. The read deadline set with SetReadDeadline or SetDeadline is
// restored when the watch stops. Stopping the watch relies on the net.Conn's SetReadDeadline to interrupt a
// blocked Read, as net.Conn requires; with a conn that ignores deadlines the next read operation waits for the
// peer's next byte.
func (s *Socket) NotifyPeerGone(gone func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if s.role != roleServer || s.rstate != ReadFinished || s.reading || s.watch != nil {
		return ErrOutOfOrder
	}
	w := &peerWatch{done: make(chan struct{})}
	s.watch = w
	go func() {
		defer close(w.done)
		// No read operation can run until endWatch has waited for this goroutine: the buffer is ours.
		err := s.fill()
		var perr *protocolError
		var nerr net.Error
		if err == nil || w.stopping.Load() || errors.As(err, &perr) || errors.As(err, &nerr) && nerr.Timeout() {
			return
		}
		gone()
	}()
	return nil
}

// endWatch stops a background read started by NotifyPeerGone and waits for it; every read operation calls it
// before it touches the input buffer.
func (s *Socket) endWatch() {
	s.mu.Lock()
	w := s.watch
	s.watch = nil
	deadline := s.readDeadline
	s.mu.Unlock()
	if w == nil {
		return
	}
	w.stopping.Store(true)
	_ = s.conn.SetReadDeadline(aLongTimeAgo)
	<-w.done
	_ = s.conn.SetReadDeadline(deadline)
}
