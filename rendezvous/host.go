package rendezvous

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/transport/utp"
)

// ErrHostClosed is what Host.Accept returns after Close.
var ErrHostClosed = errors.New("rendezvous: host closed")

// Host is the host side of a code: it holds the code's nameplate on the signalling server and meets every guest that
// comes (with Meet), several at once, each over a path of its own on the host's one UDP socket, with keys of its own.
// Accept returns the guests' sessions.
type Host struct {
	cfg    Config
	tr     *utp.Transport
	sh     *signal.Host
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan *Session
	wg     sync.WaitGroup
	kick   chan struct{} // new relay credentials arrived

	// mu guards the fields below.
	mu      sync.Mutex
	gather  Report                // what gathering learnt; refreshed by STUN
	relay   *utp.Relay            // the one TURN allocation all guests' paths use, or nil
	pending map[*Session]struct{} // sessions made but not yet returned by Accept, closed with the Host
	err     error                 // why hosting stopped, when it stopped on its own
}

// NewHost starts hosting: it binds the UDP socket, gathers candidates, and claims cfg.Code's nameplate (or picks a
// code when cfg.Code is empty; Code says which). It then meets guests in the background until Close or ctx ends.
// Errors are *Error values, as Meet's.
func NewHost(ctx context.Context, cfg Config) (*Host, error) {
	code, err := cfg.setDefaults(false)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	g, err := gather(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	rep := g.report
	rep.Role = RoleHost
	rep.Gather = time.Since(start)
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Host{cfg: cfg, tr: g.tr, gather: rep, ctx: hctx, cancel: cancel,
		ready: make(chan *Session), pending: map[*Session]struct{}{}, kick: make(chan struct{}, 1)}
	var onRelay func(*signal.RelayInfo)
	if !cfg.NoRelay {
		onRelay = func(*signal.RelayInfo) {
			select {
			case h.kick <- struct{}{}:
			default:
			}
		}
	}
	var onNewCode func(signal.Code, error)
	if cfg.OnNewCode != nil {
		onNewCode = func(c signal.Code, reason error) { cfg.OnNewCode(c.String(), reason) }
	}
	h.sh, err = cfg.signalClient().Host(hctx, signal.HostConfig{
		Code: code, Candidates: toSignal(rep.Candidates), Ciphers: cipherNames(cfg.Ciphers), MaxFailures: cfg.MaxFailures,
		GuestTimeout: cfg.GuestTimeout, OnNewCode: onNewCode, OnRelay: onRelay,
	})
	if err != nil {
		cancel()
		g.tr.Close()
		return nil, &Error{Step: StepSignal, Err: err}
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.RefreshInterval > 0 && rep.STUNError == "" {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.refresh(cfg.RefreshInterval)
		}()
	}
	if !cfg.NoRelay {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.keepRelay()
		}()
	}
	// The caller's ctx bounds the Host's life too, not only this call.
	h.wg.Add(1)
	stop := context.AfterFunc(ctx, func() { h.Close() })
	go func() {
		defer h.wg.Done()
		defer stop()
		h.loop()
	}()
	return h, nil
}

// Code is the code guests must use, e.g. "7-amber-otter". It changes when the old one is retired (Config.OnNewCode).
func (h *Host) Code() string { return h.sh.Code().String() }

// Report is what the Host gathered: its socket, STUN's view of it, and its candidates.
func (h *Host) Report() Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gather
}

// refresh asks STUN for our public address every interval, which keeps the NAT mapping of the socket open while we
// wait for guests, and tells later guests when it changed.
func (h *Host) refresh(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(h.ctx, h.cfg.GatherTimeout)
		addr, err := h.tr.DiscoverSTUN(ctx, h.cfg.STUNAddr)
		cancel()
		if err != nil {
			h.cfg.Logger.Debug("STUN refresh failed", "err", err)
			continue
		}
		h.mu.Lock()
		old := h.gather.Reflexive
		if addr == old {
			h.mu.Unlock()
			continue
		}
		h.gather.Reflexive, h.gather.NAT.Reflexive = addr, addr
		if len(h.gather.NAT.Observed) > 0 {
			h.gather.NAT.Observed[0] = addr
		}
		h.mu.Unlock()
		h.cfg.Logger.Info("our public address changed", "old", old, "new", addr)
		h.updateCandidates()
	}
}

// updateCandidates offers later guests our current candidates: the reflexive address, the interfaces' and the
// relay's.
func (h *Host) updateCandidates() {
	h.mu.Lock()
	cands := directCandidates(h.tr.HostCandidates(), h.gather.NAT)
	if h.relay != nil {
		cands = append(cands, h.relay.Candidate())
	}
	h.gather.Candidates = cands
	h.mu.Unlock()
	if err := h.sh.SetCandidates(toSignal(cands)); err != nil {
		h.cfg.Logger.Warn("cannot use the new candidates", "err", err)
	}
}

// keepRelay keeps one TURN allocation for all guests while the server offers a relay: it allocates with the first
// credentials, again whenever the allocation stopped, and again with fresher ones before the credentials it was made
// with expire (the relay would then refuse to refresh it). The replaced allocation retires: the sessions using it
// move to the new one, and it is released (retireRelay).
func (h *Host) keepRelay() {
	var dead <-chan struct{}
	var renew <-chan time.Time
	var expires, renewAfter time.Time
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.kick:
		case <-renew:
			renew = nil
		case <-dead:
			dead = nil
			h.mu.Lock()
			h.relay = nil
			h.mu.Unlock()
			h.cfg.Logger.Warn("the relay allocation ended; making a new one")
			h.updateCandidates()
		}
		info := h.sh.Relay()
		got := time.Now()
		h.mu.Lock()
		old := h.relay
		udpWorks := h.gather.STUNError == ""
		h.mu.Unlock()
		if info == nil || (old != nil && (!info.Expires.After(expires) || got.Before(renewAfter))) {
			continue
		}
		r, err := allocateRelay(h.ctx, &h.cfg, h.tr, info, udpWorks)
		if err != nil {
			h.cfg.Logger.Warn("cannot use the relay", "err", err)
			continue
		}
		h.mu.Lock()
		h.relay = r
		h.gather.Relay = r.Addr()
		h.mu.Unlock()
		if old != nil {
			retireRelay(old, expires)
			h.cfg.Logger.Debug("relay credentials renewed", "relayed", r.Addr(), "expires", info.Expires, "retired", old.Addr())
		}
		dead, expires, renewAfter = r.Done(), info.Expires, renewAt(info.Expires, got)
		renew = time.After(max(time.Until(renewAfter), 100*time.Millisecond))
		h.updateCandidates()
	}
}

// Accept returns the next guest's session, its first stream open. A guest whose meeting or punching fails is only
// logged: the Host goes on with the others. Accept fails with ErrHostClosed after Close, with why the Host stopped
// (a nameplate in use, a signalling server that refuses it: an *Error), or with ctx's error.
func (h *Host) Accept(ctx context.Context) (*Session, error) {
	select {
	case s := <-h.ready:
		return s, nil
	case <-h.ctx.Done():
		return nil, h.stopErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *Host) stopErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return h.err
	}
	return ErrHostClosed
}

// Close stops hosting: the nameplate is released, meetings in progress end, and every session of the Host is closed
// with the UDP socket they share.
func (h *Host) Close() error {
	h.cancel()
	h.sh.Close()
	h.wg.Wait()
	h.mu.Lock()
	for s := range h.pending {
		s.Close()
	}
	clear(h.pending)
	h.mu.Unlock()
	return h.tr.Close()
}

// loop takes each guest whose meeting completed and connects to it in the background.
func (h *Host) loop() {
	for {
		m, err := h.sh.Accept(h.ctx)
		if err != nil {
			if h.ctx.Err() == nil {
				h.cfg.Logger.Warn("hosting stopped", "err", err)
				h.mu.Lock()
				h.err = signalError(context.Background(), err, false)
				h.mu.Unlock()
				h.cancel() // Accept reports h.err
			}
			return
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.connect(m)
		}()
	}
}

func (h *Host) connect(m *signal.Meeting) {
	start := time.Now()
	rep := h.Report()
	rep.Gather = 0
	rep.Signal = time.Since(m.Started)
	sess, err := connect(h.ctx, &h.cfg, h.tr, m, rep)
	if err != nil {
		h.cfg.Logger.Warn("a guest met but could not connect", "meeting", m.ID, "err", err)
		return
	}
	sess.report.Total = rep.Signal + time.Since(start)
	h.mu.Lock()
	h.pending[sess] = struct{}{}
	h.mu.Unlock()
	select {
	case h.ready <- sess:
		h.mu.Lock()
		delete(h.pending, sess)
		h.mu.Unlock()
	case <-h.ctx.Done():
	}
}
