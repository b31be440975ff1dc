package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/p2phttp/p2phttp/signal/relay"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

const signalHelp = `Usage: p2phttp signal [--http ADDR] [--stun ADDR] [--turn ADDR --turn-public IP] [--redis URL] [flags]

Run the signalling server that peers meet at: an HTTP/JSON API on --http, a STUN responder on UDP --stun, which
peers use to learn their public address, and a TURN relay on UDP and TCP --turn for the peers whose NATs defeat a
direct path. It is a blind mailbox: it sees the nameplate (the number at the front of a code) and small sealed
messages, never the code's secret words, a key or an address; the relay carries only sealed datagrams. Runs until
Ctrl-C, then hands the peers that wait on it back to their clients (they post again) and stops.

Ports (defaults): HTTP 8080/tcp; STUN 3478/udp and its second port 3479/udp (--stun-alt, the STUN port + 1: with
it, p2phttp doctor tells how the NAT of a peer maps and filters); TURN 3480/udp+tcp (--turn, the STUN port + 2).
Open them all in the firewall, and the relayed ports (--turn-ports) over UDP.

The relay: every peer that meets here gets its own short-lived credentials for it (the usual TURN REST scheme: an
expiry and a user, signed with HMAC under --turn-secret), so any signalling server and relay that share the
secret accept each other's. Give every instance of one deployment the same secret (--turn-secret or
P2PHTTP_TURN_SECRET); without one, each process makes up its own. The relay caps allocations (in all and per
peer), their lifetime and their rate (--turn-* flags), and refuses to relay to private and loopback addresses.
--turn= turns it off: peers then get no relay credentials.

Without --redis, nameplates and meetings live in this process. With --redis, they live in Redis, and any number of
servers on the same Redis (behind a plain load balancer) serve one namespace: peers that reach different servers
meet, and a server that dies loses nothing. The caps on waiting requests and the rates are per server.

Examples:
  p2phttp signal --turn-public 203.0.113.9         # HTTP on :8080, STUN on :3478 and :3479, TURN on :3480
  p2phttp signal --http 127.0.0.1:9000 --stun 127.0.0.1:9478 -v   # TURN on 127.0.0.1:9480
  P2PHTTP_TURN_SECRET=... p2phttp signal --redis redis://127.0.0.1:6379/0 --turn-public 203.0.113.9   # one of several servers
  p2phttp signal --redis redis://redis:6379/0 --trusted-proxy 10.0.0.0/8 --turn=   # behind a load balancer, no relay
  # peers then pass: --signal http://THIS-HOST:8080   (STUN defaults to THIS-HOST:3478)
`

// prefixList is a comma-separated list of CIDR prefixes, as a flag.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	var s []string
	for _, x := range *p {
		s = append(s, x.String())
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		pre, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("%q is not an address or CIDR prefix", f)
			}
			pre = netip.PrefixFrom(a, a.BitLen())
		}
		*p = append(*p, pre.Masked())
	}
	return nil
}

// signalFlags registers the server's limits on fs, with the library's
// defaults as flag defaults.
func signalFlags(fs *flagSet, c *signalserver.Config) {
	*c = signalserver.DefaultConfig()
	fs.DurationVar(&c.PollWait, "poll-wait", c.PollWait, "how long a long-poll waits before the server answers 202 (post again)")
	fs.DurationVar(&c.Grace, "grace", c.Grace, "how long a peer stays present between polls")
	fs.DurationVar(&c.MeetingTTL, "meeting-ttl", c.MeetingTTL, "the longest a meeting lives")
	fs.IntVar(&c.MaxMessages, "max-messages", c.MaxMessages, "messages each side of a meeting may send")
	fs.IntVar(&c.MaxGuestsPerNameplate, "max-guests-per-nameplate", c.MaxGuestsPerNameplate, "guests waiting at or meeting one host at once")
	fs.IntVar(&c.MaxRecords, "max-records", c.MaxRecords, "nameplates and meetings in the store at once (all servers together)")
	fs.IntVar(&c.MaxParked, "max-parked", c.MaxParked, "long-polls waiting on this server at once (each holds a connection)")
	fs.IntVar(&c.MaxParkedPerIP, "max-parked-per-ip", c.MaxParkedPerIP, "waiting long-polls per IPv4 address or IPv6 /64")
	fs.IntVar(&c.MaxParkedPerIPv6Net, "max-parked-per-ipv6-net", c.MaxParkedPerIPv6Net, "waiting long-polls per IPv6 /56")
	fs.Float64Var(&c.RatePerIP, "rate-per-ip", c.RatePerIP, "requests per second per IPv4 address or IPv6 /64 (negative: no rate limits)")
	fs.IntVar(&c.RateBurst, "rate-burst", c.RateBurst, "burst of --rate-per-ip")
	fs.Float64Var(&c.RatePerIPv6Net, "rate-per-ipv6-net", c.RatePerIPv6Net, "requests per second per IPv6 /56")
	fs.IntVar(&c.RateBurstIPv6Net, "rate-burst-ipv6-net", c.RateBurstIPv6Net, "burst of --rate-per-ipv6-net")
	fs.Float64Var(&c.RoomRatePerIP, "room-rate-per-ip", c.RoomRatePerIP, "nameplate claims and new meetings per second per IPv4 address or IPv6 /64")
	fs.IntVar(&c.RoomBurst, "room-burst", c.RoomBurst, "burst of --room-rate-per-ip")
	fs.Float64Var(&c.PeerRate, "peer-rate", c.PeerRate, "requests per second of one peer in one meeting, and of a host polling its nameplate (negative: no limit)")
	fs.IntVar(&c.PeerBurst, "peer-burst", c.PeerBurst, "burst of --peer-rate")
	fs.Float64Var(&c.STUNRatePerIP, "stun-rate-per-ip", c.STUNRatePerIP, "STUN answers per second per IPv4 address or IPv6 /64 (negative: no limit)")
	fs.IntVar(&c.STUNBurst, "stun-burst", c.STUNBurst, "burst of --stun-rate-per-ip")
	fs.IntVar(&c.LimiterSlots, "limiter-slots", c.LimiterSlots, "token buckets per rate limiter (fixed memory whatever the number of sources)")
	fs.DurationVar(&c.StoreTimeout, "store-timeout", c.StoreTimeout, "bound on one store (Redis) operation")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a shutdown waits for requests in flight")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "time to read a request's headers")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "time to read a whole request (before a long-poll waits)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "time to answer a request that waits in its handler (at least --poll-wait)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "how long an idle keep-alive connection stays open")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "size cap of a request's headers")
	fs.Var((*prefixList)(&c.TrustedProxies), "trusted-proxy", "comma-separated `CIDRs` of load balancers whose X-Forwarded-For names the client")
}

// relayFlags are the flags of the TURN relay that `p2phttp signal` runs.
type relayFlags struct {
	addr, public, secret string
	credentialTTL        time.Duration
	renewFor             time.Duration
	cfg                  relay.Config
	ports                string
}

func (r *relayFlags) register(fs *flagSet) {
	fs.StringVar(&r.addr, "turn", "", "UDP and TCP `ADDR` of the TURN relay; --turn= turns it off (default the --stun host, port + 2: :3480)")
	fs.StringVar(&r.public, "turn-public", "", "public `IP` of this host, told to peers in the relay's URLs and relayed addresses (needed when --turn binds all interfaces of a host with several addresses)")
	fs.StringVar(&r.secret, "turn-secret", "", "`SECRET` shared by every signalling server and relay of one deployment (env P2PHTTP_TURN_SECRET; default a random one per process)")
	fs.DurationVar(&r.credentialTTL, "turn-credential-ttl", relay.DefaultCredentialTTL, "how long the relay credentials handed to a peer last (peers renew them before they expire)")
	fs.DurationVar(&r.renewFor, "turn-renew-for", signalserver.DefaultRelayRenewFor, "how long after its meeting a guest may renew its relay credentials: the longest a relayed session lasts")
	fs.IntVar(&r.cfg.MaxAllocations, "turn-max-allocations", relay.DefaultMaxAllocations, "relay allocations on this server at once")
	fs.IntVar(&r.cfg.MaxAllocationsPerUser, "turn-max-allocations-per-peer", relay.DefaultMaxAllocationsPerUser, "relay allocations of one peer at once")
	fs.DurationVar(&r.cfg.MaxLifetime, "turn-max-lifetime", relay.DefaultMaxLifetime, "the longest one relay allocation lives, refreshes or not")
	fs.IntVar(&r.cfg.RateLimit, "turn-rate", relay.DefaultRateLimit, "bytes per second one allocation relays each way (-1: no limit)")
	fs.StringVar(&r.ports, "turn-ports", "", "`MIN-MAX` UDP ports of the relayed sockets (default any)")
	fs.StringVar(&r.cfg.Realm, "turn-realm", relay.DefaultRealm, "TURN realm")
	fs.BoolVar(&r.cfg.AllowPrivatePeers, "turn-allow-private-peers", false, "let the relay send to loopback and private addresses (tests and labs only: it opens your own networks to any peer)")
}

// minCredentialTTL is the shortest --turn-credential-ttl: short lifetimes are for tests of renewal.
const minCredentialTTL = 2 * time.Second

// signalListeners are the sockets of `p2phttp signal`.
type signalListeners struct {
	http          net.Listener
	stun, stunAlt net.PacketConn // stunAlt nil: off
	turnUDP       net.PacketConn // nil: no relay
	turnTCP       net.Listener
}

func (l *signalListeners) close() {
	if l.http != nil {
		l.http.Close()
	}
	for _, pc := range []net.PacketConn{l.stun, l.stunAlt, l.turnUDP} {
		if pc != nil {
			pc.Close()
		}
	}
	if l.turnTCP != nil {
		l.turnTCP.Close()
	}
}

// portPlus is addr's host with its port plus n, or port 0 when addr's is 0 (any port stays any port).
func portPlus(addr string, n int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+n > 65535 {
		return "", fmt.Errorf("port %q", port)
	}
	if p == 0 {
		return addr, nil
	}
	return net.JoinHostPort(host, strconv.Itoa(p+n)), nil
}

// publicIP is the address peers reach the relay at: --turn-public, the --turn host when it is one address, or this
// host's only global unicast address.
func (r *relayFlags) publicIP(bound netip.Addr) (netip.Addr, error) {
	if r.public != "" {
		ip, err := netip.ParseAddr(r.public)
		if err != nil || ip.IsUnspecified() {
			return netip.Addr{}, usagef("--turn-public %q is not an IP address", r.public)
		}
		return ip.Unmap(), nil
	}
	if !bound.IsUnspecified() {
		return bound, nil
	}
	var found []netip.Addr
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && p.Addr().IsGlobalUnicast() && !p.Addr().IsPrivate() {
			found = append(found, p.Addr())
		}
	}
	if len(found) != 1 {
		return netip.Addr{}, usagef("--turn %q binds all interfaces and this host has %d public IPv4 addresses: say which one peers reach with --turn-public IP (or bind one with --turn IP:PORT, or turn the relay off with --turn=)", r.addr, len(found))
	}
	return found[0], nil
}

// turnURLs are the relay's TURN URIs for peers.
func turnURLs(ip netip.Addr, port int) []string {
	hp := net.JoinHostPort(ip.String(), strconv.Itoa(port))
	return []string{"turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"}
}

func runSignal(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("signal", signalHelp)
	var lf logFlags
	lf.register(fs)
	httpAddr := fs.String("http", ":8080", "TCP `ADDR` for the HTTP API")
	stunAddr := fs.String("stun", ":3478", "UDP `ADDR` for the STUN responder")
	stunAlt := fs.String("stun-alt", "", "UDP `ADDR` of STUN's second port, for NAT behaviour tests (p2phttp doctor); off turns it off (default the --stun host, port + 1: :3479)")
	redisURL := fs.String("redis", "", "keep nameplates and meetings in the Redis at `URL` (redis://HOST:PORT/DB) instead of in this process")
	var rf relayFlags
	rf.register(fs)
	var cfg signalserver.Config
	signalFlags(fs, &cfg)
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	turnSet := false
	fs.Visit(func(f *flag.Flag) { turnSet = turnSet || f.Name == "turn" })
	if *stunAlt == "" {
		if *stunAlt, err = portPlus(*stunAddr, 1); err != nil {
			return usagef("--stun %q is not HOST:PORT (or :PORT)", *stunAddr)
		}
	}
	if !turnSet {
		if rf.addr, err = portPlus(*stunAddr, 2); err != nil {
			return usagef("--stun %q is not HOST:PORT (or :PORT)", *stunAddr)
		}
	}
	addrs := []struct{ flag, addr string }{{"--http", *httpAddr}, {"--stun", *stunAddr}}
	if *stunAlt != "off" {
		addrs = append(addrs, struct{ flag, addr string }{"--stun-alt", *stunAlt})
	}
	if rf.addr != "" {
		addrs = append(addrs, struct{ flag, addr string }{"--turn", rf.addr})
	}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return usagef("%s %q is not HOST:PORT (or :PORT)", a.flag, a.addr)
		}
	}
	var bad string
	fs.Visit(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok && bad == "" && f.Name != "turn-rate" {
			switch v := g.Get().(type) {
			case int:
				if v <= 0 {
					bad = f.Name
				}
			case time.Duration:
				if v <= 0 {
					bad = f.Name
				}
			}
		}
	})
	if bad != "" {
		return usagef("--%s must be positive", bad)
	}
	if rf.cfg.RateLimit == 0 {
		return usagef("--turn-rate must be positive, or -1 for no limit")
	}
	// TURN REST usernames carry the expiry in whole seconds, and a peer renews halfway through.
	if rf.credentialTTL < minCredentialTTL || rf.renewFor <= 0 {
		return usagef("--turn-credential-ttl must be at least %v, and --turn-renew-for positive", minCredentialTTL)
	}
	if rf.ports != "" {
		lo, hi, ok := strings.Cut(rf.ports, "-")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if !ok || err1 != nil || err2 != nil || a == 0 || a > b {
			return usagef("--turn-ports %q is not MIN-MAX (two ports, MIN <= MAX)", rf.ports)
		}
		rf.cfg.PortMin, rf.cfg.PortMax = uint16(a), uint16(b)
	}
	if cfg.WriteTimeout <= cfg.PollWait {
		cfg.WriteTimeout = cfg.PollWait + 10*time.Second // a long-poll must be able to answer
	}
	log := lf.logger(env)
	cfg.Logger = log

	var ls signalListeners
	defer ls.close()
	listenErr := func(what string, err error) error {
		return fmt.Errorf("signalling server: %s: %s; is another server using the port? pick others with --http, --stun, --stun-alt and --turn", what, err)
	}
	if ls.http, err = net.Listen("tcp", *httpAddr); err != nil {
		return listenErr("--http", err)
	}
	if ls.stun, err = net.ListenPacket("udp", *stunAddr); err != nil {
		return listenErr("--stun", err)
	}
	if *stunAlt != "off" {
		if ls.stunAlt, err = net.ListenPacket("udp", *stunAlt); err != nil {
			return listenErr("--stun-alt", err)
		}
	}
	var rs *relay.Server
	turnLine := "no relay"
	if rf.addr != "" {
		if ls.turnUDP, ls.turnTCP, err = relay.Listen(rf.addr); err != nil {
			return listenErr("--turn", err)
		}
		bound := ls.turnUDP.LocalAddr().(*net.UDPAddr).AddrPort()
		public, err := rf.publicIP(bound.Addr().Unmap())
		if err != nil {
			return err
		}
		secret := rf.secret
		if secret == "" {
			secret = env.getenv("P2PHTTP_TURN_SECRET")
		}
		if secret == "" {
			var b [32]byte
			rand.Read(b[:])
			secret = hex.EncodeToString(b[:])
			log.Warn("relay: no --turn-secret (or P2PHTTP_TURN_SECRET) given, so this process made up one: the relay credentials it hands out work only on its own relay; signalling servers and relays of one deployment must share one secret")
		}
		rf.cfg.Secret = []byte(secret)
		rf.cfg.PublicIP = public
		rf.cfg.Logger = log
		if rs, err = relay.New(rf.cfg, ls.turnUDP, ls.turnTCP); err != nil {
			return err
		}
		ls.turnUDP, ls.turnTCP = nil, nil // the relay's now
		defer rs.Close()
		cfg.RelayURLs = turnURLs(public, int(bound.Port()))
		cfg.RelaySecret = rf.cfg.Secret
		cfg.RelayCredentialTTL = rf.credentialTTL
		cfg.RelayRenewFor = rf.renewFor
		cfg.PublicIP = public
		turnLine = fmt.Sprintf("TURN relay on udp+tcp %s (peers reach it at %s)", bound, public)
	} else if rf.public != "" {
		if cfg.PublicIP, err = rf.publicIP(netip.Addr{}); err != nil {
			return err
		}
	}
	where := "in this process"
	if *redisURL != "" {
		redis.SetLogger(redisLogger{log})
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := signalserver.NewRedisStore(rctx, *redisURL, log)
		cancel()
		if err != nil {
			return fmt.Errorf("%s; is Redis running, and is --redis redis://HOST:PORT/DB right?", err)
		}
		defer st.Close()
		cfg.Store = st
		where = "in Redis at " + st.Addr()
	}
	srv := signalserver.New(cfg)
	stunLine := "STUN on udp " + ls.stun.LocalAddr().String()
	if ls.stunAlt != nil {
		stunLine += " and " + ls.stunAlt.LocalAddr().String()
	}
	fmt.Fprintf(env.stderr, "p2phttp: signalling server on http %s, %s, %s, rooms %s; stop with Ctrl-C\n", *httpAddr, stunLine, turnLine, where)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	hl := ls.http
	ls.http = nil // Serve closes it
	go func() { errs <- srv.Serve(ctx, hl) }()
	go func() { errs <- srv.ServeSTUNPair(ctx, ls.stun, ls.stunAlt) }()
	first := <-errs
	cancel()
	if err := errors.Join(first, <-errs); err != nil {
		return fmt.Errorf("signalling server: %s", err)
	}
	fmt.Fprintln(env.stderr, "p2phttp: signalling server stopped")
	return nil
}

// redisLogger sends go-redis's own messages (reconnects, pool errors) to the
// debug log: the store reports outages itself.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
