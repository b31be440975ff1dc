package engine

import (
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/congestion"
	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

type connState uint8

const (
	stateSynSent  connState = iota // dialled, SYN not yet acknowledged
	stateOpen                      // data may flow both ways
	stateTimeWait                  // both FINs acknowledged; still acks a retransmitted FIN
	stateDead                      // failed or finished; out of the table
)

// Conn is a uTP connection. It implements net.Conn, plus CloseWrite for a half
// close. All methods are safe for concurrent use.
type Conn struct {
	ep             *Endpoint
	recvID, sendID uint16 // immutable

	// Guarded by ep.timers.mu.
	timerAt  time.Time
	timerIdx int

	readCh, writeCh chan struct{} // wake a blocked Read or Write; capacity 1
	estab           chan struct{} // Dial's: closed when the dial completes or fails; nil once Dial returns
	onLink          atomic.Int32  // Reads waiting in the link's ReadUntil: interrupt them when waking them
	rdl, wdl        deadline

	mu       sync.Mutex
	state    connState
	err      error // terminal: returned by Read and Write once set
	accepted bool  // opened by the peer
	peerISN  uint16
	closed   bool // Close was called
	estabSet bool

	// Send side. q[0] holds sequence number sndUna; q[:sent] were sent.
	cc          congestion.Controller
	rtt         congestion.RTTStats
	q           []segment
	qArr        []segment // the whole array q slides through (see pushSegment)
	sndUna      uint16
	sndNxt      uint16 // next sequence number to assign
	isn         uint16
	sent        int
	queued      int // payload bytes in q
	unsent      int // payload bytes in q[sent:]
	inflight    int // datagram bytes sent and neither acknowledged nor lost
	lostPending int // segments declared lost, awaiting retransmission
	limbo       int // segments in limbo
	lostHint    int // no lost segment below this index
	peerWnd     int
	finQueued   bool // CloseWrite or Close queued our FIN
	finAcked    bool
	backoff     uint
	rtoBase     time.Time // when the retransmission timer (re)started
	lastSend    time.Time
	tlpSent     bool
	forceSend   int // segments that may leave despite the windows (RTO, probes)
	rack        rackState
	ackReach    uint16 // the first sequence number past what the last acknowledgement could report
	reo         reorderState
	retxSeqs    [16]uint16 // the last retransmitted sequence numbers, to judge the peer's duplicate reports
	retxN       int
	delayBase   uint32
	delayBaseAt time.Time
	mtu         mtuState

	// Receive side. ooo[i] holds sequence number rcvNxt+1+i.
	rcvNxt       uint16
	ooo          []*slot
	oooBytes     int
	rq           []*[]byte // in-order payload for Read; rq[0] from rqOff
	rqOff        int
	rqBytes      int
	finRcvd      bool
	finSeq       uint16
	eof          bool // everything up to the peer's FIN arrived
	ackPending   int
	ackNow       bool
	dupSeq       uint16 // a packet that arrived twice, to report once
	dupPending   bool
	lastAdv      int    // the window last advertised
	replyDiff    uint32 // timestamp difference to send: our receive time less the peer's timestamp
	writeClosed  bool
	readClosed   bool
	ackAt        time.Time
	paceAt       time.Time
	rackAt       time.Time
	persistAt    time.Time
	lingerAt     time.Time // CloseTimeout or the end of time-wait
	retransmits  int64
	wakeR, wakeW bool // a run of packets made data readable or room to write: wake Read or Write once it ends
	rec          recoveryCounters
	batch        [][]byte
	batchBufs    []*[]byte
	batchPending int
}

// segment is a packet of the send queue.
type segment struct {
	typ      wire.Type
	seq      uint16
	buf      *[]byte // payload
	sentAt   time.Time
	size     int // datagram size of the last transmission
	xmits    uint8
	inFlight bool
	lost     bool
	sacked   bool
	probe    bool // the last transmission was padded to an MTU probe size
	// limbo: sent before a packet since delivered and late by RACK's
	// measure, but past what the peer could report. Not in flight, not lost:
	// delivered or lost, nobody knows yet.
	limbo bool
	// end is the first sequence number not yet sent when this packet last
	// left: every packet from end on was first sent after it.
	end uint16
}

func (s *segment) payload() []byte {
	if s.buf == nil {
		return nil
	}
	return *s.buf
}

// slot is an out-of-order packet waiting for the gap before it.
type slot struct {
	buf *[]byte
	fin bool
}

type rackState struct {
	xmit time.Time     // send time of the most recently sent packet delivered
	seq  uint16        // its sequence number
	rtt  time.Duration // its round trip
	end  uint16        // its segment's end
}

func newConn(ep *Endpoint, recvID, sendID uint16) *Conn {
	c := &Conn{
		ep: ep, recvID: recvID, sendID: sendID, timerIdx: -1,
		readCh: make(chan struct{}, 1), writeCh: make(chan struct{}, 1),
		cc:      ep.cfg.NewController(),
		peerWnd: 64 << 10,
		reo:     reorderState{mult: 1},
	}
	c.rtt.MinRTO, c.rtt.MaxRTO = ep.cfg.MinRTO, ep.cfg.MaxRTO
	c.mtu.init(ep.link, ep.cfg)
	c.cc.SetMaxDatagramSize(c.mtu.cur)
	c.lastAdv = ep.cfg.ReceiveWindow
	return c
}

// startDial queues and sends the SYN.
func (c *Conn) startDial(now time.Time) {
	c.isn = uint16(rand.Uint32())
	c.sndUna, c.sndNxt = c.isn, c.isn+1
	c.ackReach = c.isn
	c.pushSegment(segment{typ: wire.Syn, seq: c.isn})
	c.flush(now)
}

// acceptSyn sets up a connection the peer's SYN opened.
func (c *Conn) acceptSyn(h *wire.Header, now time.Time) {
	c.accepted = true
	c.peerISN = h.SeqNr
	c.rcvNxt = h.SeqNr + 1
	c.isn = uint16(rand.Uint32())
	c.sndUna, c.sndNxt = c.isn, c.isn
	c.ackReach = c.isn
	c.peerWnd = int(h.WndSize)
	c.replyDiff = c.ep.micros(now) - h.Timestamp
	c.state = stateOpen
	c.setEstablished()
}

// sendSynAck acknowledges the peer's SYN. Its sequence number is our initial
// one, which our first data packet carries too.
func (c *Conn) sendSynAck(now time.Time) {
	if c.state == stateDead {
		return
	}
	c.appendPacket(now, wire.State, c.isn, c.peerISN, nil, 0, false)
	c.writeBatch()
}

func (c *Conn) setEstablished() {
	if !c.estabSet {
		c.estabSet = true
		if c.estab != nil {
			close(c.estab)
		}
	}
}

// wakeReader and wakeWriter unblock a waiting Read or Write.
func (c *Conn) wakeReader() {
	select {
	case c.readCh <- struct{}{}:
	default:
	}
	// After the send: a Read that entered ReadUntil later asks readWoken before it reads.
	if c.onLink.Load() > 0 {
		c.ep.rlink.Interrupt()
	}
}

func (c *Conn) wakeWriter() {
	select {
	case c.writeCh <- struct{}{}:
	default:
	}
}

// abort ends the connection with err, sending a RESET first if reset is set.
// Buffered data is dropped.
func (c *Conn) abort(err error, reset bool) {
	if c.state == stateDead {
		return
	}
	if reset && c.state != stateTimeWait {
		c.ep.sendReset(c.sendID, c.rcvNxt-1)
	}
	c.ep.cfg.Logger.Debug("utp: connection ends", "conn", c.recvID, "err", err, "reset_sent", reset)
	if c.err == nil {
		c.err = err
	}
	c.finish()
}

// finish takes the connection out of the table and frees its buffers, except
// what already arrived in order: Read still returns it before the error, so a
// reset does not destroy a response that was complete.
func (c *Conn) finish() {
	r := &c.rec
	c.ep.cfg.Logger.Debug("utp: connection loss recovery", "conn", c.recvID, "retransmits", c.retransmits,
		"lost_rack", r.LostByRACK, "lost_resends", r.LostResends, "lost_rto", r.LostByRTO, "rtos", r.RTOs, "tlps", r.TailLossProbes,
		"spurious", r.SpuriousRetransmits, "longest_stall", r.LongestStall)
	c.state = stateDead
	c.ep.remove(c)
	c.releaseSend()
	c.setEstablished()
	c.wakeReader()
	c.wakeWriter()
}

// release returns every buffer to the pools.
func (c *Conn) release() {
	c.releaseSend()
	c.dropReadQueue()
}

// releaseSend frees the send queue and the out-of-order packets.
func (c *Conn) releaseSend() {
	for i := range c.q {
		putBuf(c.q[i].buf)
	}
	c.q, c.qArr = nil, nil
	c.sent, c.queued, c.unsent, c.inflight, c.lostPending, c.limbo = 0, 0, 0, 0, 0, 0
	for _, s := range c.ooo {
		if s != nil {
			putBuf(s.buf)
		}
	}
	c.ooo, c.oooBytes = nil, 0
}

func (c *Conn) dropReadQueue() {
	for _, b := range c.rq {
		putBuf(b)
	}
	c.rq, c.rqOff, c.rqBytes = nil, 0, 0
}

// Read reads data in order. It returns io.EOF once the peer's FIN arrived and
// everything before it was read.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		if c.rqBytes > 0 && len(p) > 0 {
			n := c.readLocked(p)
			c.mu.Unlock()
			return n, nil
		}
		switch {
		case c.readClosed:
			c.mu.Unlock()
			return 0, ErrClosed
		case c.eof:
			c.mu.Unlock()
			return 0, io.EOF
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return 0, err
		case len(p) == 0:
			c.mu.Unlock()
			return 0, nil
		}
		c.mu.Unlock()
		if c.readOnLink() {
			continue
		}
		select {
		case <-c.readCh:
		case <-c.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// readOnLink waits for a wake of Read by reading the network in this goroutine, when the link can (see
// ReadingLink); false: it could not, or the deadline passed, and Read waits on readCh.
func (c *Conn) readOnLink() bool {
	rl := c.ep.rlink
	if rl == nil {
		return false
	}
	select {
	case <-c.rdl.wait():
		return false
	default:
	}
	c.onLink.Add(1)
	woken := rl.ReadUntil((*readWaiter)(c))
	c.onLink.Add(-1)
	return woken
}

// readWaiter is a Conn's Read as a Waiter: it takes a wake from readCh without waiting.
type readWaiter Conn

func (w *readWaiter) Woken() bool {
	select {
	case <-w.readCh:
		return true
	default:
		return false
	}
}

// readLocked copies from the read queue and advertises the freed window when
// it grew enough to matter.
func (c *Conn) readLocked(p []byte) int {
	n, used := 0, 0
	for n < len(p) && used < len(c.rq) {
		b := *c.rq[used]
		k := copy(p[n:], b[c.rqOff:])
		n += k
		c.rqOff += k
		if c.rqOff == len(b) {
			putBuf(c.rq[used])
			c.rq[used] = nil
			used++
			c.rqOff = 0
		}
	}
	c.rqBytes -= n
	switch {
	case used < len(c.rq):
		c.rq = c.rq[used:]
	case cap(c.rq) > 16:
		c.rq = nil
	default:
		c.rq = c.rq[:0] // reuse the array from where it starts
	}
	if c.rqBytes > 0 {
		c.wakeReader() // another reader may take the rest
	}
	if c.state == stateOpen {
		threshold := max(2*c.mtu.cur, min(c.ep.cfg.ReceiveWindow/4, 256<<10))
		if c.recvWindow()-c.lastAdv >= threshold {
			c.ackNow = true
			c.flush(time.Now())
		}
	}
	return n
}

// Write sends p. It blocks while the send buffer is full; a write deadline
// returns how much was queued with os.ErrDeadlineExceeded.
func (c *Conn) Write(p []byte) (int, error) {
	n := 0
	for {
		c.mu.Lock()
		switch {
		case c.closed:
			c.mu.Unlock()
			return n, ErrClosed
		case c.writeClosed:
			c.mu.Unlock()
			return n, ErrWriteClosed
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return n, err
		}
		if n == len(p) {
			c.mu.Unlock()
			return n, nil
		}
		if room := c.sendRoom(); room > 0 {
			n += c.enqueue(p[n:min(len(p), n+room)])
			c.flush(time.Now())
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		if rl := c.ep.rlink; rl != nil {
			rl.WriteWaits()
		}
		select {
		case <-c.writeCh:
		case <-c.wdl.wait():
			return n, os.ErrDeadlineExceeded
		}
	}
}

// CloseWrite sends a FIN after the data already written: the peer reads EOF,
// and this side may still read.
func (c *Conn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.writeClosed {
		return nil
	}
	c.writeClosed = true
	c.queueFin()
	c.flush(time.Now())
	c.wakeWriter()
	return nil
}

// Close closes both directions: data already written is still delivered and
// followed by a FIN, in the background, for at most Config.CloseTimeout. Data
// arriving afterwards resets the connection, as TCP does. Closing again does
// nothing and returns nil, so layers that each close what they were given
// (a session and its first stream) need not agree on who goes first.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.readClosed = true
	c.dropReadQueue()
	c.wakeReader()
	c.wakeWriter()
	if c.state == stateDead {
		return nil
	}
	if c.state == stateSynSent {
		c.abort(ErrClosed, true)
		return nil
	}
	if !c.writeClosed {
		c.writeClosed = true
		c.queueFin()
	}
	if c.err == nil {
		c.err = ErrClosed
	}
	now := time.Now()
	c.lingerAt = now.Add(c.ep.cfg.CloseTimeout)
	c.flush(now)
	c.maybeDone(now)
	return nil
}

// queueFin appends our FIN to the send queue.
func (c *Conn) queueFin() {
	if c.finQueued || c.state == stateDead {
		return
	}
	c.finQueued = true
	c.pushSegment(segment{typ: wire.Fin, seq: c.sndNxt})
	c.sndNxt++
}

// maybeDone moves a closed connection whose FINs are both acknowledged into
// time-wait.
func (c *Conn) maybeDone(now time.Time) {
	if c.state != stateOpen || !c.closed || !c.finAcked || !c.eof {
		return
	}
	c.state = stateTimeWait
	c.release()
	c.lingerAt = now.Add(c.ep.cfg.TimeWait)
	c.rearm(now)
}

// LocalAddr returns Config.LocalAddr, or an Addr naming the connection.
func (c *Conn) LocalAddr() net.Addr {
	if a := c.ep.cfg.LocalAddr; a != nil {
		return a
	}
	return Addr{ConnID: c.recvID, Local: true}
}

// RemoteAddr returns Config.RemoteAddr, or an Addr naming the connection.
func (c *Conn) RemoteAddr() net.Addr {
	if a := c.ep.cfg.RemoteAddr; a != nil {
		return a
	}
	return Addr{ConnID: c.sendID}
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for Read.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl.set(t, c.wakeReader)
	c.wakeReader() // a blocked Read picks up the new deadline
	return nil
}

// SetWriteDeadline sets the deadline for Write.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdl.set(t, nil)
	c.wakeWriter()
	return nil
}

// ConnStats describes a connection's state.
type ConnStats struct {
	SmoothedRTT, MinRTT, RTO time.Duration
	CongestionWindow         int // bytes
	BytesInFlight            int
	SendQueued               int // payload bytes written and not yet acknowledged
	ReceiveBuffered          int // payload bytes received and not yet read, in order or not
	PeerWindow               int
	DatagramSize             int // current, after MTU discovery
	Retransmits              int64
	Recovery                 RecoveryStats
}

// Stats returns the connection's current state.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ConnStats{
		SmoothedRTT: c.rtt.SmoothedRTT(), MinRTT: c.rtt.MinRTT(), RTO: c.rto(),
		CongestionWindow: c.cc.CongestionWindow(), BytesInFlight: c.inflight, SendQueued: c.queued,
		ReceiveBuffered: c.rqBytes + c.oooBytes, PeerWindow: c.peerWnd, DatagramSize: c.mtu.cur,
		Retransmits: c.retransmits, Recovery: c.rec.stats(),
	}
}

// deadline is a settable deadline whose wait channel closes when it passes.
// It holds no timer until a deadline is set.
type deadline struct {
	mu sync.Mutex
	t  *time.Timer
	ch chan struct{} // nil: no deadline
}

// set sets the deadline; expired, when not nil, runs when it passes (after the channel closed), to wake a waiter
// that does not wait on the channel.
func (d *deadline) set(t time.Time, expired func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.t != nil {
		d.t.Stop()
		d.t = nil
	}
	if t.IsZero() {
		d.ch = nil
		return
	}
	ch := make(chan struct{})
	d.ch = ch
	if dur := time.Until(t); dur <= 0 {
		close(ch)
	} else {
		d.t = time.AfterFunc(dur, func() {
			close(ch)
			if expired != nil {
				expired()
			}
		})
	}
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}
