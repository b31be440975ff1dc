package utp

import (
	"fmt"
	"time"
)

// loop punches until the path is ready, then keeps it alive: it probes the peer (fast while streams send or the
// peer is still connecting, at the keepalive interval when idle), which keeps NAT mappings open and measures the
// path's RTT; it declares the path dead after Config.DeadPathTimeout without an authenticated datagram from the peer.
func (p *Path) loop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var sent int64 // the engine's packets sent at the last round
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		case <-timer.C:
		}
		now := time.Now()
		p.expireSent(now)
		p.mu.Lock()
		established, r, peerDone, srtt := p.established, p.loadRoute(), p.peerDone, p.srtt
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
		prev := sent
		sent = p.eng.Stats().PacketsSent
		switch {
		case !peerDone || suspect:
			interval = p.cfg.ProbeInterval
		case now.Sub(time.Unix(0, p.sel.curRecv.Load())) > srtt+p.cfg.ProbeInterval && p.eng.InFlight():
			// Our packets wait for acknowledgements and the peer went quiet: find out soon whether the route works.
			interval = p.cfg.ProbeInterval
		case sent != prev:
			// The peer's datagrams show the route alive: probes only keep the RTT fresh.
			interval = p.cfg.BusyProbeInterval
		}
		if sinceProbe >= interval {
			p.sendCtrl(r, kindProbe, nil, true)
			sinceProbe = 0
		}
		// Woken at least each second, so that a path whose streams start sending soon probes at their pace.
		timer.Reset(min(interval-sinceProbe, p.cfg.DeadPathTimeout/8, next, time.Second))
	}
}

// expireSent forgets punches and probes no answer came for in time, and counts the probes among them as lost in a
// row on the current route (route selection falls back to the relay on that count).
func (p *Path) expireSent(now time.Time) {
	lost := 0
	p.mu.Lock()
	defer p.mu.Unlock()
	lossAfter := p.probeLossAfter()
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
}

// probeLossAfter is how long a probe waits for its echo before it counts as lost. Guarded by p.mu.
func (p *Path) probeLossAfter() time.Duration { return max(4*p.srtt, 200*time.Millisecond) }
