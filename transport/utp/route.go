package utp

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// A route carries sealed datagrams between this Transport and the peer one way or another: straight over the UDP
// socket to a punched address (directRoute), from one of the extra sockets of a hard-NAT punch (socketRoute), or
// through a TURN allocation of ours (relayRoute). The path picks the route its datagrams take;
// whoever reads a route hands what arrives to Path.receive with the route it came on, and reports a route that can no
// longer carry anything to Path.routeDead. Adding a kind of route is one more implementation of this interface.
type route interface {
	// send writes one sealed datagram without waiting (a full queue drops it, as a router would).
	send(b []byte) error
	// id names the route: two routes with equal ids are the same route.
	id() routeID
	// peerAddr is the peer's address as this route reaches it (for a direct route, where its datagrams come from).
	peerAddr() netip.AddrPort
}

type routeKind uint8

const (
	routeDirect routeKind = iota + 1 // over a UDP socket of the Transport
	routeRelay                       // through a TURN allocation of ours
)

type routeID struct {
	kind routeKind
	addr netip.AddrPort
	via  netip.AddrPort // a relay route's relayed address
	sock uint16         // a direct route's local port when it is not the Transport's socket (socketRoute)
}

func (id routeID) String() string {
	switch id.kind {
	case routeDirect:
		if id.sock != 0 {
			return "direct " + id.addr.String() + " from port " + strconv.Itoa(int(id.sock))
		}
		return "direct " + id.addr.String()
	case routeRelay:
		return "relay " + id.via.String() + " to " + id.addr.String()
	}
	return "route " + id.addr.String()
}

// routeVia is a way datagrams reach us other than the Transport's socket: one of our relays, or an extra socket of
// a hard-NAT punch. It makes the route that answers the same way.
type routeVia interface {
	route(addr netip.AddrPort) route
	routeID(addr netip.AddrPort) routeID
}

// newRoute is the route to the peer address addr: the way via, or straight over the socket when via is nil.
func newRoute(t *Transport, addr netip.AddrPort, via routeVia) route {
	if via != nil {
		return via.route(addr)
	}
	return newDirectRoute(t, addr)
}

// routeIDOf is the id of newRoute(t, addr, via), without making the route.
func routeIDOf(addr netip.AddrPort, via routeVia) routeID {
	if via != nil {
		return via.routeID(addr)
	}
	return routeID{kind: routeDirect, addr: addr}
}

// directRoute is a punched candidate pair: the Transport's socket and one of the peer's addresses.
type directRoute struct {
	t    *Transport
	addr netip.AddrPort
	udp  *net.UDPAddr
}

func newDirectRoute(t *Transport, addr netip.AddrPort) *directRoute {
	return &directRoute{t: t, addr: addr, udp: net.UDPAddrFromAddrPort(addr)}
}

func (r *directRoute) send(b []byte) error {
	_, err := r.t.send(b, r.udp)
	return err
}

func (r *directRoute) id() routeID              { return routeID{kind: routeDirect, addr: r.addr} }
func (r *directRoute) peerAddr() netip.AddrPort { return r.addr }

// errRouteDead: a route could not carry a datagram at all (as opposed to dropping one).
var errRouteDead = errors.New("utp: route dead")

// routeRef holds a route for atomic.Pointer.
type routeRef struct{ r route }

// loadRoute is the route the path's datagrams take now, or nil before a punch was answered.
func (p *Path) loadRoute() route {
	if ref := p.route.Load(); ref != nil {
		return ref.r
	}
	return nil
}

// setRoute makes r the path's route. Called with p.mu held.
func (p *Path) setRoute(r route) {
	cur := p.loadRoute()
	if cur != nil && cur.id() != r.id() {
		p.log.Info("utp: path moved", "from", cur.id(), "to", r.id())
	}
	if p.rank(r) == rankRelay {
		p.sel.backup = r
	}
	p.route.Store(&routeRef{r})
	if cur == nil || cur.id() != r.id() {
		p.routeChanged()
	}
	p.remote = r.peerAddr()
	p.heard[r.id()] = r
	if len(p.heard) > maxHeardRoutes {
		for id := range p.heard {
			if id != r.id() {
				delete(p.heard, id)
				break
			}
		}
	}
}

// maxHeardRoutes bounds the routes a path remembers as alternatives.
const maxHeardRoutes = 8

// heardOn is called for every fresh authenticated datagram (plain is its opened plaintext) with the route it came
// on. Once the path is established, the newest datagram (the highest counter so far, so neither a reordered old one
// nor a replay) arriving on another route moves the path there: the peer's NAT rebound its mapping, the peer moved,
// or it chose a better route or fell back on the relay. Punches and their replies do not move it (the peer may
// still be answering punches sent to its other addresses), nor do packets the peer sent on a route other than its
// own current one (flagBackup: relay keepalives). A worse route (lower-ranked, or a worse relay route: see
// betterRelayRoute) takes over only once the current one went quiet, so a late datagram from the relay does not undo
// an upgrade.
func (p *Path) heardOn(r route, newest bool, plain []byte, now time.Time) {
	kind := ctrlKind(plain[0])
	if kind == kindPunch || kind == kindPunchReply || (kind != kindDatagram && len(plain) > 1 && plain[1]&flagBackup != 0) {
		return
	}
	cur := p.loadRoute()
	if cur == nil {
		return
	}
	if cur.id() == r.id() {
		p.sel.curRecv.Store(now.UnixNano()) // the common case, without a lock
		return
	}
	if !newest {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur = p.loadRoute()
	if !p.established || p.err != nil || cur.id() == r.id() {
		return
	}
	if p.dialer && viaRetiring(r) {
		return // a dialler never follows the peer onto a relay it retires (relay_retire.go)
	}
	worse := p.rank(r) < p.rank(cur) || (p.rank(r) == p.rank(cur) && p.betterRelayRoute(cur, r))
	if worse && now.Sub(time.Unix(0, p.sel.curRecv.Load())) < routeQuiet {
		return
	}
	p.setRoute(r)
}

// routeDead drops r; when it was the path's route, the path falls back on another route the peer was heard on, if
// any. Without one the path keeps r: liveness decides whether the path is dead.
func (p *Path) routeDead(r route, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.heard, r.id())
	if cur := p.loadRoute(); cur == nil || cur.id() != r.id() {
		return
	}
	for _, alt := range p.heard {
		p.log.Info("utp: route dead, moving the path", "route", r.id(), "err", err, "to", alt.id())
		p.setRoute(alt)
		return
	}
	p.log.Debug("utp: route dead and no other", "route", r.id(), "err", err)
}
