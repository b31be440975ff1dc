package signal

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"time"
)

// connWriteTimeout bounds writing an answer to a parked connection. The
// answer is a few hundred bytes into an idle socket's empty send buffer, so
// only a broken peer ever gets near it.
const connWriteTimeout = 5 * time.Second

// park waits for the other peer on pl. Where it can, it hijacks the HTTP/1.x
// connection and returns at once: the room keeps only the net.Conn, and the
// handler goroutine, its stack and net/http's per-connection buffers are freed
// (net/http holds ~20-30 KB per connection in a handler; a parked conn costs
// a few hundred bytes plus the kernel socket). The answer is then written
// straight to the connection, followed by Connection: close. Where hijacking
// is not supported (HTTP/2, wrapped ResponseWriters), it waits in the handler.
func (s *Server) park(w http.ResponseWriter, r *http.Request, pl *poll) {
	rc := http.NewResponseController(w)
	if conn, _, err := rc.Hijack(); err == nil {
		s.mu.Lock()
		select {
		case rp := <-pl.done: // answered while we were hijacking
			s.mu.Unlock()
			writeConnReply(conn, rp)
		default:
			pl.conn = conn
			s.mu.Unlock()
		}
		return
	}
	// http.Server's ReadTimeout would cancel r.Context mid-wait.
	rc.SetReadDeadline(time.Time{})
	select {
	case rp := <-pl.done:
		writeReply(w, rp)
	case <-r.Context().Done():
		s.abandon(pl)
	}
}

// deliver hands rp to a poll that was claimed from the state.
func (s *Server) deliver(pl *poll, rp reply) {
	s.mu.Lock()
	conn := pl.conn
	if conn == nil {
		pl.done <- rp
	}
	s.mu.Unlock()
	if conn != nil {
		writeConnReply(conn, rp)
	}
}

// abandon handles a client that hung up while waiting in the handler. Before
// the meeting its peer leaves the room; after, it keeps its answer for a
// re-poll until the stale timer.
func (s *Server) abandon(pl *poll) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rm, p := pl.room, pl.peer
	if p.poll != pl {
		return
	}
	s.claim(p, reply{})
	if p.answer == nil {
		s.dropPeer(rm, p)
		return
	}
	p.stale = time.AfterFunc(s.cfg.PollWait, func() { s.dropStale(rm, p) })
}

// alive reports whether p's client may still be there: false only when its
// parked connection has been closed by the client.
func (p *peer) alive() bool {
	if p.poll == nil || p.poll.conn == nil {
		return true
	}
	return connAlive(p.poll.conn)
}

// writeConnReply writes a complete HTTP/1.1 response to a hijacked
// connection and closes it.
func writeConnReply(conn net.Conn, rp reply) {
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(connWriteTimeout))
	bw := bufio.NewWriterSize(conn, 256+len(rp.body))
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n", rp.status, http.StatusText(rp.status))
	if rp.retryAfter > 0 {
		fmt.Fprintf(bw, "Retry-After: %d\r\n", rp.retryAfter)
	}
	fmt.Fprintf(bw, "Date: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", time.Now().UTC().Format(http.TimeFormat), len(rp.body))
	bw.Write(rp.body)
	bw.Flush()
}
