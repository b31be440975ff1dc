package utp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"
)

// RelayConfig says which TURN server to allocate a relay on, and with which credentials.
type RelayConfig struct {
	// Server is the TURN server's host:port.
	Server string
	// TCP reaches the server over a TCP connection of the relay's own (TURN over TCP) instead of over the
	// Transport's UDP socket: for networks that block UDP. The allocation itself relays UDP either way.
	TCP bool
	// Username and Password are the TURN long-term credentials (e.g. TURN REST credentials the signalling server
	// minted).
	Username, Password string
}

// Relay is a TURN allocation made by a Transport: an address on the relay server (Addr) that forwards what peers
// send to it to this Transport, and through which the Transport's paths reach peers their NATs keep apart. Every
// path of the Transport punches through every live Relay beside its direct candidates, so a host makes one Relay
// for all its peers. Datagrams arriving through the relay are opened and checked by the path like any other.
type Relay struct {
	t      *Transport
	cfg    RelayConfig
	server netip.AddrPort // the TURN server
	client *turn.Client
	conn   net.PacketConn // the allocation: WriteTo sends through it, ReadFrom yields what peers sent to it
	tcp    net.Conn       // the TCP connection to the server, with RelayConfig.TCP
	// own is a UDP socket of the relay's own, used instead of the Transport's when another allocation on the same
	// server holds the Transport's socket (a TURN allocation is bound to its 5-tuple): a renewed allocation made
	// while the one it replaces still carries paths.
	own   net.PacketConn
	addr  netip.AddrPort // the relayed address
	ready atomic.Bool    // the allocation exists: conn and addr are set
	// retiring: Retire was called; paths move off this relay (relay_retire.go)
	retiring atomic.Bool
	lastRecv atomic.Int64 // unix nanoseconds of the last datagram a peer sent through the allocation
	sendq    chan relayDatagram
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

type relayDatagram struct {
	b  []byte
	to *net.UDPAddr
}

// relaySendQueue bounds the datagrams waiting to go through a relay: sending never waits (a full queue drops, as a
// router would), while a write may wait for the server to grant a permission.
const relaySendQueue = 512

// AllocateRelay makes a TURN allocation on cfg.Server (over the Transport's own UDP socket unless cfg.TCP) and adds
// it to the Transport's routes: paths connected from now on punch through it, and Addr is the relay candidate to
// offer peers. It fails when ctx ends first. Close releases the allocation.
func (t *Transport) AllocateRelay(ctx context.Context, cfg RelayConfig) (*Relay, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.ConnectTimeout)
		defer cancel()
	}
	r := &Relay{t: t, cfg: cfg, sendq: make(chan relayDatagram, relaySendQueue), done: make(chan struct{})}
	ccfg := &turn.ClientConfig{
		TURNServerAddr: cfg.Server,
		Username:       cfg.Username,
		Password:       cfg.Password,
		LoggerFactory:  pionLogs{},
	}
	if cfg.TCP {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", cfg.Server)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRelay, err)
		}
		r.tcp = c
		ap, _ := addrPortOf(c.RemoteAddr())
		r.server = ap
		ccfg.TURNServerAddr = ap.String()
		ccfg.Conn = turn.NewSTUNConn(c)
	} else {
		ua, err := net.ResolveUDPAddr(t.network(), cfg.Server)
		if err != nil {
			return nil, fmt.Errorf("%w: resolving %q: %w", ErrRelay, cfg.Server, err)
		}
		r.server, _ = addrPortOf(ua)
		ccfg.TURNServerAddr = r.server.String()
		ccfg.Conn = &relaySocket{r: r}
		if t.sharedSocketRelay(r.server) != nil {
			host := ""
			if t.local.IP != nil {
				host = t.local.IP.String()
			}
			pc, err := net.ListenPacket(t.network(), net.JoinHostPort(host, "0"))
			if err != nil {
				return nil, fmt.Errorf("%w: a socket for a second allocation on %s: %w", ErrRelay, cfg.Server, err)
			}
			r.own = pc
			ccfg.Conn = pc
		}
	}
	var err error
	if r.client, err = turn.NewClient(ccfg); err != nil {
		r.closeConns()
		return nil, fmt.Errorf("%w: %w", ErrRelay, err)
	}
	if r.tcp != nil || r.own != nil { // the client reads its own connection
		if err := r.client.Listen(); err != nil {
			r.closeConns()
			return nil, fmt.Errorf("%w: %w", ErrRelay, err)
		}
	} else if err := t.addRelay(r); err != nil { // its answers arrive on our socket from now on
		r.closeConns()
		return nil, err
	}
	type result struct {
		conn net.PacketConn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		c, err := r.client.Allocate()
		res <- result{c, err}
	}()
	select {
	case a := <-res:
		if a.err != nil {
			r.Close()
			return nil, fmt.Errorf("%w: allocating on %s: %w", ErrRelay, cfg.Server, a.err)
		}
		r.conn = a.conn
	case <-ctx.Done():
		go func() { // the allocation, if it still comes, is released at once
			if a := <-res; a.err == nil {
				a.conn.Close()
			}
		}()
		r.Close()
		return nil, fmt.Errorf("%w: allocating on %s: %w", ErrRelay, cfg.Server, ctx.Err())
	}
	r.addr, _ = addrPortOf(r.conn.LocalAddr())
	r.ready.Store(true)
	if isClosed(r.done) { // the Transport closed meanwhile
		r.conn.Close()
		return nil, ErrTransportClosed
	}
	if r.tcp != nil || r.own != nil {
		if err := t.addRelay(r); err != nil {
			r.Close()
			return nil, err
		}
	}
	r.wg.Add(2)
	go r.readLoop()
	go r.writeLoop()
	t.log.Debug("utp: relay allocated", "server", r.server, "tcp", cfg.TCP, "relayed", r.addr)
	return r, nil
}

// ErrRelay: a TURN allocation failed or its relay stopped.
var ErrRelay = errors.New("utp: relay")

// Addr is the relayed address: peers reach this Transport through the relay by sending to it.
func (r *Relay) Addr() netip.AddrPort { return r.addr }

// Candidate is Addr as a candidate to offer peers.
func (r *Relay) Candidate() Candidate { return Candidate{Kind: CandidateRelay, Addr: r.addr} }

// Server is the TURN server's address.
func (r *Relay) Server() netip.AddrPort { return r.server }

// Done is closed when the relay stops (Close, the Transport's Close, or the server or its connection failing).
func (r *Relay) Done() <-chan struct{} { return r.done }

// Close releases the allocation. Paths that were using it fall back on another route, if they have one.
func (r *Relay) Close() error {
	r.once.Do(func() {
		close(r.done)
		r.t.removeRelay(r)
		if r.ready.Load() {
			r.conn.Close() // deallocates
		}
		r.closeConns()
	})
	r.wg.Wait()
	return nil
}

func (r *Relay) closeConns() {
	if r.client != nil {
		r.client.Close()
	}
	if r.tcp != nil {
		r.tcp.Close()
	}
	if r.own != nil {
		r.own.Close()
	}
}

// readLoop hands what peers sent to the allocation to the Transport's demultiplexer, with this relay as its route.
func (r *Relay) readLoop() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.conn.ReadFrom(buf)
		if err != nil {
			if !isClosed(r.done) {
				r.t.log.Warn("utp: relay stopped", "server", r.server, "err", err)
				go r.Close()
			}
			return
		}
		if ap, ok := addrPortOf(from); ok {
			r.lastRecv.Store(time.Now().UnixNano())
			r.t.dispatchSealed(buf[:n], ap, r, nil)
		}
	}
}

// writeLoop sends the queued datagrams through the allocation; the first datagram to a new peer address waits for
// the server to grant a permission for it.
func (r *Relay) writeLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.done:
			return
		case d := <-r.sendq:
			if _, err := r.conn.WriteTo(d.b, d.to); err != nil && !isClosed(r.done) {
				r.t.stats.sendDrops.Add(1)
				r.t.log.Debug("utp: relay send", "server", r.server, "to", d.to, "err", err)
			}
		}
	}
}

// send queues b (copied) for to, dropping it when the queue is full.
func (r *Relay) send(b []byte, to *net.UDPAddr) error {
	if isClosed(r.done) {
		return fmt.Errorf("%w %v closed", ErrRelay, r.server)
	}
	select {
	case r.sendq <- relayDatagram{append([]byte(nil), b...), to}:
	default:
		r.t.stats.sendDrops.Add(1)
	}
	return nil
}

// relayRoute reaches the peer at addr through a relay of ours.
type relayRoute struct {
	r    *Relay
	addr netip.AddrPort
	udp  *net.UDPAddr
}

func (r *Relay) route(addr netip.AddrPort) route {
	return &relayRoute{r: r, addr: addr, udp: net.UDPAddrFromAddrPort(addr)}
}

func (r *Relay) routeID(addr netip.AddrPort) routeID {
	return routeID{kind: routeRelay, addr: addr, via: r.addr}
}

func (rr *relayRoute) send(b []byte) error      { return rr.r.send(b, rr.udp) }
func (rr *relayRoute) id() routeID              { return rr.r.routeID(rr.addr) }
func (rr *relayRoute) peerAddr() netip.AddrPort { return rr.addr }

// relaySocket is the Transport's UDP socket as the TURN client of a Relay sees it: it writes to the server through
// the socket, and never reads (the Transport's read loop hands it the server's answers: relayInbound).
type relaySocket struct{ r *Relay }

func (s *relaySocket) WriteTo(b []byte, to net.Addr) (int, error) {
	ua, ok := to.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("%w: not a UDP address: %v", ErrRelay, to)
	}
	return s.r.t.send(b, ua)
}

func (s *relaySocket) ReadFrom([]byte) (int, net.Addr, error) {
	<-s.r.done
	return 0, nil, net.ErrClosed
}

func (s *relaySocket) Close() error                     { return nil }
func (s *relaySocket) LocalAddr() net.Addr              { return s.r.t.local }
func (s *relaySocket) SetDeadline(time.Time) error      { return nil }
func (s *relaySocket) SetReadDeadline(time.Time) error  { return nil }
func (s *relaySocket) SetWriteDeadline(time.Time) error { return nil }

// addRelay makes r one of the Transport's relays.
func (t *Transport) addRelay(r *Relay) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrTransportClosed
	}
	old := t.loadRelays()
	rs := append(append(make([]*Relay, 0, len(old)+1), old...), r)
	t.relays.Store(&rs)
	return nil
}

func (t *Transport) removeRelay(r *Relay) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var rs []*Relay
	for _, o := range t.loadRelays() {
		if o != r {
			rs = append(rs, o)
		}
	}
	t.relays.Store(&rs)
}

// loadRelays lists the Transport's relays, including UDP ones still waiting for their allocation (whose server's
// answers the demultiplexer must already hand over).
func (t *Transport) loadRelays() []*Relay {
	if p := t.relays.Load(); p != nil {
		return *p
	}
	return nil
}

// readyRelays lists the relays whose allocation exists: those paths can send through.
func (t *Transport) readyRelays() []*Relay {
	var out []*Relay
	for _, r := range t.loadRelays() {
		if r.ready.Load() {
			out = append(out, r)
		}
	}
	return out
}

// relayInbound hands a STUN message or a TURN ChannelData message from the TURN server of one of our UDP relays to
// its client, and reports whether it was one.
func (t *Transport) relayInbound(b []byte, from netip.AddrPort) bool {
	for _, r := range t.loadRelays() {
		if r.sharesSocket() && r.server == from {
			r.client.HandleInbound(b, net.UDPAddrFromAddrPort(from))
			return true
		}
	}
	return false
}

// sharesSocket reports whether r's TURN client talks to its server over the Transport's socket.
func (r *Relay) sharesSocket() bool { return r.tcp == nil && r.own == nil }

// sharedSocketRelay returns the relay whose TURN client talks to server over the Transport's socket, or nil: only one
// can, since the server tells allocations apart by their 5-tuple.
func (t *Transport) sharedSocketRelay(server netip.AddrPort) *Relay {
	for _, r := range t.loadRelays() {
		if r.sharesSocket() && r.server == server && !isClosed(r.done) {
			return r
		}
	}
	return nil
}

// isChannelData reports whether b starts like TURN ChannelData (channel numbers 0x4000-0x7FFF).
func isChannelData(b []byte) bool { return len(b) >= 4 && b[0]&0xC0 == 0x40 }

// pionLogs silences pion's own loggers: what matters is logged by the Transport.
type pionLogs struct{}

func (pionLogs) NewLogger(string) logging.LeveledLogger { return quietLogger{} }

type quietLogger struct{}

func (quietLogger) Trace(string)          {}
func (quietLogger) Tracef(string, ...any) {}
func (quietLogger) Debug(string)          {}
func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Info(string)           {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warn(string)           {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Error(string)          {}
func (quietLogger) Errorf(string, ...any) {}
