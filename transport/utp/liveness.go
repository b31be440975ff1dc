package utp

import (
	"fmt"
	"time"
)

// loop punches until the path is ready, then keeps it alive: it probes the peer (fast while streams write or the
// peer is still connecting, at the keepalive interval when idle), which keeps NAT mappings open and measures the
// RTT that feeds the congestion controller; it counts lost probes and declares the path dead after
// Config.DeadPathTimeout without an authenticated datagram from the peer.
func (p *Path) loop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		case <-timer.C:
		}
		now := time.Now()
		lost := p.expireSent(now)
		for range lost {
			p.cc.onProbeLost()
		}
		p.mu.Lock()
		established, r, peerDone := p.established, p.loadRoute(), p.peerDone
		sinceProbe := now.Sub(p.lastProbe)
		p.mu.Unlock()

		if !established {
			p.punch()
			timer.Reset(p.cfg.PunchInterval)
			continue
		}
		if silent := now.Sub(time.Unix(0, p.lastRecv.Load())); silent > p.cfg.DeadPathTimeout {
			p.shutdown(fmt.Errorf("%w: nothing from %v for %v", ErrPathDead, r.id(), silent.Round(time.Millisecond)), false)
			return
		}
		next, suspect := p.maintainRoutes(now)
		r = p.loadRoute()
		interval := p.cfg.KeepaliveInterval
		if !peerDone || suspect || now.Sub(time.Unix(0, p.lastWrite.Load())) < time.Second {
			interval = p.cfg.ProbeInterval
		}
		if sinceProbe >= interval {
			p.sendCtrl(r, kindProbe, nil, true)
			sinceProbe = 0
		}
		timer.Reset(min(interval-sinceProbe, p.cfg.DeadPathTimeout/8, next))
	}
}

// expireSent forgets punches and probes no answer came for in time, and returns how many probes were lost.
func (p *Path) expireSent(now time.Time) (lost int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lossAfter := max(4*p.srtt, 200*time.Millisecond)
	for ctr, s := range p.sent {
		if now.Sub(s.at) < lossAfter {
			continue
		}
		if s.probe {
			lost++
		} else if now.Sub(s.at) < 10*time.Second {
			continue // punch replies may still lock the path
		}
		delete(p.sent, ctr)
	}
	p.sel.lostInRow += lost
	return lost
}

// noteWrite records stream activity; the first write after an idle second wakes the loop to probe fast again.
func (p *Path) noteWrite() {
	now := time.Now().UnixNano()
	if prev := p.lastWrite.Swap(now); now-prev > int64(time.Second) {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}
