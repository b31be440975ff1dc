package signalserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/p2phttp/p2phttp/signal"
)

// connWriteTimeout bounds writing an answer to a parked connection. The
// answer is a few hundred bytes into an idle socket's empty send buffer, so
// only a broken peer ever gets near it.
const connWriteTimeout = 5 * time.Second

// storeRetry is how soon a parked poll whose look at the store failed looks
// again.
const storeRetry = time.Second

// poller is the part of a long-poll that knows its records.
type poller interface {
	// check re-evaluates the poll pollID in the store. A reply ends the
	// poll; otherwise next (Unix ms, 0: none) is when the records change by
	// themselves. final: the poll's time is up (its deadline, or the server
	// shuts down), so it must leave its parked state (a nil reply then means
	// 202). hungUp: its client closed the connection; the poll records that
	// and its reply goes nowhere.
	check(ctx context.Context, pollID string, final, hungUp bool) (rp *reply, next int64, err error)
}

// parkedPoll is one long-poll waiting for its records to change. Where it can
// it hijacks the HTTP/1.x connection: then its only goroutine sits in a
// one-byte Read of the idle connection, which returns at once when the
// client closes it (the poll's slot is freed then, not at its deadline), and
// which a wake-up or the deadline interrupts through the read deadline.
// net/http's per-request buffers and handler goroutine are gone meanwhile.
// Where hijacking is not possible (HTTP/2, wrapped ResponseWriters) it waits
// in the handler, on the request's context.
type parkedPoll struct {
	s        *Server
	id       string // in the records, so a later poll of the same peer can take over
	p        poller
	client   client // whose parked-poll slot it holds; zero: the server's only
	deadline time.Time
	next     int64 // Unix ms when the records change by themselves; 0: never
	w        http.ResponseWriter
	r        *http.Request

	unsubscribe func()
	woken       atomic.Bool // the records changed: check again
	stopping    atomic.Bool // the server shuts down: hand the poll back
	conn        atomic.Pointer[net.Conn]
	wakeCh      chan struct{} // in-handler waiting; buffered
	registered  bool
	done        chan struct{} // closed when the poll has ended (registered polls)
}

// acquire takes a parked-poll slot for rq: counted against the caps of its
// client when perClient, else only against the server's (a poll that a
// peer's claim or meeting already bounds: one parked at a time each).
func (s *Server) acquire(rq *request, perClient bool) (reply, string, bool) {
	rq.slot = client{}
	if perClient {
		rq.slot = rq.client
	}
	switch s.parked.acquire(rq.slot) {
	case parkFull:
		return retryReply(http.StatusServiceUnavailable, "too many waiting peers; retry later", 5*time.Second), reasonMaxParked, false
	case parkClientFull:
		return retryReply(http.StatusTooManyRequests, "too many waiting requests from your address", s.cfg.Grace), reasonClientParked, false
	}
	return reply{}, "", true
}

// newParkedPoll prepares a poll of rq on key, whose slot the caller acquired,
// and subscribes it to key before the caller's first look at the records, so
// that no change is missed.
func (s *Server) newParkedPoll(rq *request, key string, p poller) *parkedPoll {
	pp := &parkedPoll{
		s: s, id: signal.NewPeerID(), p: p, client: rq.slot,
		deadline: time.Now().Add(s.cfg.PollWait),
		w:        rq.w, r: rq.r,
		wakeCh: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	pp.unsubscribe = s.store.Subscribe(key, pp.wake)
	return pp
}

// wake makes the poll check its records again.
func (pp *parkedPoll) wake() {
	pp.woken.Store(true)
	pp.interrupt()
}

// handBack makes the poll end with a 202 at once (server shutdown).
func (pp *parkedPoll) handBack() {
	pp.stopping.Store(true)
	pp.interrupt()
}

func (pp *parkedPoll) interrupt() {
	if c := pp.conn.Load(); c != nil {
		(*c).SetReadDeadline(time.Unix(1, 0))
	}
	select {
	case pp.wakeCh <- struct{}{}:
	default:
	}
}

// finish releases what the poll holds.
func (pp *parkedPoll) finish() {
	pp.unsubscribe()
	pp.s.parked.release(pp.client)
	if pp.registered {
		pp.s.mu.Lock()
		delete(pp.s.polls, pp)
		pp.s.mu.Unlock()
		close(pp.done)
	}
}

// settle ends the first look at the records of a poll: a reply (or an error)
// is written now; otherwise the poll parks.
func (s *Server) settle(pp *parkedPoll, rp *reply, err error) {
	if err != nil || rp != nil {
		pp.finish()
		if err != nil {
			s.storeFailed(pp.w, err)
		} else {
			writeReply(pp.w, *rp)
		}
		return
	}
	s.mu.Lock()
	pp.registered = true
	s.polls[pp] = struct{}{}
	if s.closed {
		pp.stopping.Store(true)
	}
	s.mu.Unlock()
	s.metrics.waits.Inc()

	rc := http.NewResponseController(pp.w)
	if conn, _, err := rc.Hijack(); err == nil {
		// Keep nothing of net/http's: its buffers and request go now.
		pp.w, pp.r = nil, nil
		pp.conn.Store(&conn)
		go pp.run(pp.waitConn(conn), func(rp reply) { writeConnReply(conn, rp) }, conn.Close)
		return
	}
	// http.Server's ReadTimeout would cancel r.Context mid-wait.
	rc.SetReadDeadline(time.Time{})
	pp.run(pp.waitHandler, func(rp reply) { writeReply(pp.w, rp) }, func() error { return nil })
}

// run waits for the poll's answer and writes it. wait blocks until the poll
// should look again (returning false) or its client hung up (true).
func (pp *parkedPoll) run(wait func(until time.Time) bool, write func(reply), closeConn func() error) {
	s := pp.s
	defer pp.finish()
	for {
		now := time.Now()
		final := pp.stopping.Load() || !now.Before(pp.deadline)
		if pp.woken.Swap(false) || final || pp.next != 0 && now.UnixMilli() >= pp.next {
			ctx, cancel := s.storeCtx()
			rp, next, err := pp.p.check(ctx, pp.id, final, false)
			cancel()
			if err != nil && !final {
				// The store is slow or away: keep the client waiting and
				// look again in a while (or when it reconnects).
				s.log.Debug("signalserver: store, parked poll; trying again", "err", err)
				pp.next = time.Now().Add(storeRetry).UnixMilli()
				continue
			}
			if err != nil {
				s.log.Warn("signalserver: store, parked poll", "err", err)
				s.metrics.refusals.WithLabelValues(reasonStore).Inc()
				write(storeErrorReply(err))
				return
			}
			if rp == nil && final {
				rp = &waitingReply
			}
			if rp != nil {
				if rp.status == http.StatusAccepted {
					s.metrics.pollTimeouts.Inc()
				}
				write(*rp)
				return
			}
			pp.next = next
			continue
		}
		until := pp.deadline
		if next := time.UnixMilli(pp.next); pp.next != 0 && next.Before(until) {
			until = next
		}
		if wait(until) {
			s.metrics.hangups.Inc()
			ctx, cancel := s.storeCtx()
			if _, _, err := pp.p.check(ctx, pp.id, false, true); err != nil {
				s.log.Warn("signalserver: store, recording a hang-up", "err", err)
			}
			cancel()
			closeConn()
			return
		}
	}
}

// waitConn waits on a hijacked connection: a read returns when the client
// closes it (or sends something, which a client waiting for its answer
// does not), or at the read deadline, which wake moves to the past.
func (pp *parkedPoll) waitConn(conn net.Conn) func(until time.Time) bool {
	var buf [1]byte
	return func(until time.Time) bool {
		conn.SetReadDeadline(until)
		if pp.woken.Load() || pp.stopping.Load() {
			return false // a wake-up that came before the deadline was set
		}
		_, err := conn.Read(buf[:])
		return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
	}
}

// waitHandler waits in the handler goroutine.
func (pp *parkedPoll) waitHandler(until time.Time) bool {
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-pp.wakeCh:
		return false
	case <-t.C:
		return false
	case <-pp.r.Context().Done():
		return true
	}
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
