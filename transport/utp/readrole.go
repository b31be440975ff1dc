package utp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/engine"
)

// readRole is the right to read the Transport's socket, and what reading needs (the batch reader and the rxBatch).
// A background goroutine holds it when no stream waits: it reads STUN, control packets, relayed traffic and data for
// streams nobody is reading. A stream's Read about to wait for its data takes the role instead (pathLink.ReadUntil)
// and reads the socket itself, handing everything it reads out as the background goroutine would: its own data then
// reaches it with no other goroutine woken, as the kernel wakes a TCP reader. Waking a goroutine that sleeps costs a
// thread wake-up on another CPU, more than the round trip of a small request on a fast path.
//
// When such a Read returns, the role stays parked for Config.ReaderGrace, so that the next Read of a
// request/response exchange takes it back with no hand-off at all; the background goroutine takes it after the grace.
// A Read that finds the role with another stream's Read waits on its stream as before, and the holder hands the role
// to the background goroutine when it returns.
//
// Making a reader look again (a kick): the holder clears the socket's read deadline if a kick set one, then marks
// itself reading, then checks whether it was asked to stop (a wake of its stream's Read, or a Read wanting the role
// from the background goroutine), then reads. Whoever asks first records the request (a wake on the stream's
// channel, or want), then sets a read deadline in the past if the holder is reading: either the holder sees the
// request, or its read returns at once. A stream's read deadline is such a wake (the engine wakes the Read when it
// passes), so the socket's deadline is only ever a kick's.
//
// Readers take the role only on a plain *net.UDPConn (it can be kicked with a read deadline); any other PacketConn,
// or a negative ReaderGrace, leaves it to the background goroutine.
type readRole struct {
	t     *Transport
	uc    *net.UDPConn // nil: only the background goroutine reads
	grace time.Duration

	// Owned by the holder.
	r       *batchReader
	rx      *rxBatch
	deliver func(b []byte, from netip.AddrPort)
	kicked  bool // a read timed out: a kick's deadline is still set on the socket

	reading atomic.Bool // the holder is about to read or reading: a request must kick it
	want    atomic.Bool // a Read waits for the background goroutine to hand it the role

	bgWake  chan struct{} // wakes the background goroutine to look at the role again; capacity 1
	handoff chan struct{} // the background goroutine gave the Read that wanted it the role; capacity 1

	mu        sync.Mutex
	holder    roleHolder
	released  time.Time // when a Read last gave the role back
	urgent    bool      // the background goroutine must take the role now, not after the grace
	contended bool      // a Read found another Read holding the role: its holder hands it back at once
	bgWaits   bool      // the background goroutine waits for the role without a timer: a release must wake it
	takes     uint64    // how many times a Read took the role
	closed    bool      // the socket is closed
}

type roleHolder uint8

const (
	roleFree       roleHolder = iota // parked: whoever comes first takes it
	roleBackground                   // the background goroutine reads
	roleReader                       // a stream's Read reads
)

// maxRoleLookBackoff bounds the background goroutine's spells between looks at Reads that keep taking the role:
// at most ReaderGrace<<maxRoleLookBackoff (16 ms by default), the longest a parked role waits for it.
const maxRoleLookBackoff = 4

// kickDeadline is a read deadline in the past: it makes a read in progress return at once.
var kickDeadline = time.Unix(1, 0)

// newReadRole returns the Transport's read role, held by the background goroutine.
func newReadRole(t *Transport) *readRole {
	rr := &readRole{
		t: t, grace: t.cfg.ReaderGrace,
		r: newBatchReader(t.pc), rx: &rxBatch{},
		bgWake: make(chan struct{}, 1), handoff: make(chan struct{}, 1),
		holder: roleBackground,
	}
	if uc, ok := t.pc.(*net.UDPConn); ok && rr.grace >= 0 {
		rr.uc = uc
	}
	rr.deliver = func(b []byte, from netip.AddrPort) { t.dispatch(b, from, rr.rx) }
	return rr
}

// background is the background goroutine: it holds the role whenever no Read does, and takes it back ReaderGrace
// after a Read gave it up.
func (rr *readRole) background() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var seenTakes uint64
	looks := 0 // looks in a row that found Reads still taking the role
	for {
		rr.mu.Lock()
		if rr.closed {
			rr.mu.Unlock()
			return
		}
		wait := time.Duration(-1) // no timer
		switch rr.holder {
		case roleFree:
			since := time.Since(rr.released)
			if rr.urgent || since >= rr.grace {
				rr.holder, rr.urgent = roleBackground, false
				looks = 0
			} else {
				wait = rr.grace - since
			}
		case roleReader:
			// Readers that keep taking the role (a request/response exchange, a slow download) are looked at
			// again after a grace, then after longer spells while they go on: a wake every grace would cost a
			// bulk receiver a thread wake-up per millisecond. A role parked meanwhile is read again by the next
			// Read, or at once when a Write waits for room (writeWaits). One Read that held the role all along
			// (it waits long) wakes this goroutine when it gives it back.
			if rr.takes != seenTakes {
				seenTakes, wait = rr.takes, rr.grace<<min(looks, maxRoleLookBackoff)
				looks++
			} else {
				rr.bgWaits = true
			}
		}
		holder := rr.holder
		rr.mu.Unlock()
		if holder == roleBackground {
			rr.readInBackground()
			continue
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-rr.bgWake:
		case <-timer.C:
		case <-rr.t.done:
			return
		}
		timer.Stop()
	}
}

// readInBackground reads and sorts datagrams until a Read wants the role (it then hands it over) or the socket is
// closed.
func (rr *readRole) readInBackground() {
	rr.read(rr.want.Load)
	rr.mu.Lock()
	if rr.want.Load() {
		rr.want.Store(false)
		rr.holder = roleReader
		rr.handoff <- struct{}{}
	} else {
		rr.holder = roleFree
	}
	rr.mu.Unlock()
}

// readUntil is pathLink.ReadUntil on the Transport's socket (see engine.ReadingLink).
func (rr *readRole) readUntil(w engine.Waiter) bool {
	if !rr.take() {
		return false
	}
	woken := rr.read(w.Woken)
	rr.release()
	return woken
}

// read is the holder's loop: it reads and sorts datagrams until stop, asked before every read, reports true (read
// returns true then) or the socket is closed.
func (rr *readRole) read(stop func() bool) bool {
	defer rr.reading.Store(false)
	for {
		if rr.kicked && rr.uc != nil {
			_ = rr.uc.SetReadDeadline(time.Time{})
			rr.kicked = false
		}
		rr.reading.Store(true)
		if stop() {
			return true
		}
		n, err := rr.r.read()
		rr.reading.Store(false)
		if err != nil {
			if rr.readFailed(err) {
				return false
			}
			continue
		}
		rr.r.datagrams(n, rr.deliver)
		rr.rx.flush()
	}
}

// take gets the role for a Read: at once when it is parked, from the background goroutine (kicked out of its read)
// when it holds it; false when another Read holds it or the socket is closed.
func (rr *readRole) take() bool {
	if rr.uc == nil {
		return false
	}
	rr.mu.Lock()
	switch {
	case rr.closed:
		rr.mu.Unlock()
		return false
	case rr.holder == roleFree:
		rr.holder = roleReader
		rr.takes++
		rr.mu.Unlock()
		return true
	case rr.holder == roleBackground && !rr.want.Load():
		rr.want.Store(true)
		rr.mu.Unlock()
		rr.kick()
		select {
		case <-rr.handoff:
		case <-rr.t.done:
			return false
		}
		rr.mu.Lock()
		rr.takes++
		rr.mu.Unlock()
		return true
	default: // another Read holds the role or waits for it
		rr.contended = true
		rr.mu.Unlock()
		return false
	}
}

// release gives a Read's role back: parked for the grace, or to the background goroutine at once when another Read
// waits on its stream meanwhile (its data comes through the background goroutine), a Write waits for room, or the
// socket is closed.
func (rr *readRole) release() {
	rr.mu.Lock()
	rr.holder = roleFree
	rr.released = time.Now()
	wake := false
	if rr.contended || rr.closed {
		rr.contended, rr.urgent = false, true
	}
	if rr.urgent || rr.bgWaits {
		rr.bgWaits, wake = false, true
	}
	rr.mu.Unlock()
	if wake {
		select {
		case rr.bgWake <- struct{}{}:
		default:
		}
	}
}

// writeWaits has the background goroutine take the role at once, or as soon as the Read that holds it returns: a
// Write waits for acknowledgements, and no Read may come to read them.
func (rr *readRole) writeWaits() {
	rr.mu.Lock()
	wake := rr.holder == roleFree && !rr.urgent
	rr.urgent = rr.urgent || rr.holder != roleBackground // a Read that holds the role hands it back at once
	rr.mu.Unlock()
	if wake {
		select {
		case rr.bgWake <- struct{}{}:
		default:
		}
	}
}

// kick makes the holder look again: its read in progress, if any, returns at once.
func (rr *readRole) kick() {
	if rr.uc != nil && rr.reading.Load() {
		_ = rr.uc.SetReadDeadline(kickDeadline)
	}
}

// readFailed handles a failed read; true when the socket is closed and reading must stop.
func (rr *readRole) readFailed(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		rr.kicked = true // the next read clears the kick's deadline
		return false
	}
	if rr.t.isClosed() || errors.Is(err, net.ErrClosed) {
		if !rr.t.isClosed() {
			// The socket was closed under us: paths die of silence.
			rr.t.log.Warn("utp: socket closed outside Transport.Close")
		}
		rr.mu.Lock()
		rr.closed = true
		rr.mu.Unlock()
		return true
	}
	// ICMP errors (e.g. port unreachable from a candidate that is not there) surface here on some systems.
	rr.t.log.Debug("utp: socket read", "err", err)
	return false
}
