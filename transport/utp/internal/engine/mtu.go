package engine

import (
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// mtuState is packetization-layer path MTU discovery (in the manner of RFC
// 8899): connections start at the size every path carries and probe upward by
// padding a data packet with padding extensions to the probe size. A probe's
// payload is ordinary data, so losing it costs a retransmission at the
// current size, and its loss is not read as congestion. A size that fails
// three times in a row is too big; the search bisects between the largest size
// that worked and the smallest that failed, and starts again after
// Config.MTUProbeInterval, in case the path changed.
type mtuState struct {
	safe, max, cur int
	lo, hi         int // lo is known to work; sizes above hi failed
	probeSize      int
	probing        bool // a probe is in flight
	probeSeq       uint16
	fails          int
	nextAt         time.Time
	interval       time.Duration
}

// minDatagram is the least datagram size the engine works with, whatever the
// link reports.
const minDatagram = wire.HeaderLen + sackReserve + 64

func (m *mtuState) init(link Link, cfg Config) {
	safe, mx := link.DatagramSizes()
	safe = max(safe, minDatagram)
	mx = min(mx, cfg.MaxDatagramSize, bufClasses[len(bufClasses)-1])
	mx = max(mx, safe)
	*m = mtuState{safe: safe, max: mx, cur: safe, lo: safe, hi: mx, probeSize: mx, interval: cfg.MTUProbeInterval}
	if m.interval < 0 {
		m.hi = safe // discovery disabled
	}
}

// wantProbe reports whether the next new data packet should be a probe.
func (m *mtuState) wantProbe(now time.Time) bool {
	return !m.probing && m.lo < m.hi && m.probeSize > m.cur && !now.Before(m.nextAt)
}

func (m *mtuState) probeSent(seq uint16) {
	m.probing, m.probeSeq = true, seq
}

// probeAcked records that a packet of size bytes got through.
func (m *mtuState) probeAcked(seq uint16, size int, now time.Time, c *Conn) {
	if size > m.cur {
		m.cur, m.lo = size, max(m.lo, size)
		c.cc.SetMaxDatagramSize(size)
	}
	if m.probing && seq == m.probeSeq {
		m.probing, m.fails = false, 0
		m.next(now)
	}
}

// probeLost records that the probe was declared lost.
func (m *mtuState) probeLost(seq uint16, now time.Time) {
	if !m.probing || seq != m.probeSeq {
		return
	}
	m.probing = false
	if m.fails++; m.fails >= 3 {
		m.hi, m.fails = m.probeSize-1, 0
	}
	m.next(now)
}

// next picks the next probe size, or ends the search for a while.
func (m *mtuState) next(now time.Time) {
	if m.hi-m.lo < 16 {
		// Done: search again from here after the interval.
		m.lo, m.hi = m.cur, m.max
		m.probeSize = m.max
		m.nextAt = now.Add(m.interval)
		if m.interval < 0 {
			m.hi = m.cur
		}
		return
	}
	if m.fails == 0 {
		m.probeSize = (m.lo + m.hi + 1) / 2
	}
}
