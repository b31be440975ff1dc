// Package relay is the TURN relay (RFC 8656) that p2phttp's signalling server
// runs beside STUN, for the peers whose NATs defeat punching. It is
// github.com/pion/turn's server with what an operator of a public service
// needs around it: short-lived credentials in the usual TURN REST form, so
// that any signalling instance sharing the secret can mint them and any relay
// sharing it accepts them; per-credential and global allocation quotas; a
// maximum lifetime and a rate limit on each allocation; and no relaying into
// the operator's own networks unless asked for.
//
// What passes through a p2phttp relay is the peers' sealed datagrams: the relay
// sees their sizes, timing and the peers' public addresses, never content.
package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/turn/v4"
)

// Defaults for the zero values of Config.
const (
	DefaultRealm                 = "p2phttp"
	DefaultMaxAllocations        = 1000
	DefaultMaxAllocationsPerUser = 4
	DefaultMaxLifetime           = time.Hour
	DefaultRateLimit             = 8 << 20 // bytes per second each way: 64 Mbit/s
	DefaultCredentialTTL         = 10 * time.Minute
)

// Config configures a relay.
type Config struct {
	// Secret is the shared secret of the credentials; required. Every relay and
	// signalling instance of one deployment uses the same secret.
	Secret []byte
	// Realm is the TURN realm, default DefaultRealm.
	Realm string
	// RelayIP is the local address relayed sockets bind to; by default the
	// address of the first packet listener, or all interfaces.
	RelayIP netip.Addr
	// PublicIP is the relayed address told to clients (XOR-RELAYED-ADDRESS);
	// required when the relay binds all interfaces or sits behind a 1:1 NAT.
	PublicIP netip.Addr
	// PortMin and PortMax bound the relayed sockets' ports; zero means any port.
	PortMin, PortMax uint16
	// MaxAllocations caps allocations on this relay, default DefaultMaxAllocations.
	MaxAllocations int
	// MaxAllocationsPerUser caps allocations per user of the credentials
	// (the part of the username after the expiry; p2phttp's signalling
	// server makes one per peer), default DefaultMaxAllocationsPerUser.
	MaxAllocationsPerUser int
	// MaxLifetime ends an allocation this long after it was made, whatever its
	// refreshes ask for; default DefaultMaxLifetime.
	MaxLifetime time.Duration
	// RateLimit caps each allocation's relayed bytes per second in each
	// direction (excess datagrams are dropped, as a congested link would);
	// default DefaultRateLimit, negative for none.
	RateLimit int
	// AllowPrivatePeers lets allocations send to loopback, private, link-local
	// and unspecified addresses. Off by default, so that the relay cannot be
	// used to reach the operator's own networks; tests on one host need it.
	AllowPrivatePeers bool
	// Logger receives the relay's logs; nil discards them.
	Logger *slog.Logger
}

// ErrNoSecret reports a Config without a Secret.
var ErrNoSecret = errors.New("relay: a shared secret is required")

// Server is a running relay.
type Server struct {
	cfg    Config
	log    *slog.Logger
	turn   *turn.Server
	mu     sync.Mutex
	users  map[string]int // allocations per user (userOf the username)
	allocs int
}

// New starts a relay serving TURN over UDP on pc and over TCP on l; either may
// be nil, not both. The relay owns them: Close closes them.
func New(cfg Config, pc net.PacketConn, l net.Listener) (*Server, error) {
	if len(cfg.Secret) == 0 {
		return nil, ErrNoSecret
	}
	if pc == nil && l == nil {
		return nil, errors.New("relay: nothing to listen on")
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.MaxAllocations <= 0 {
		cfg.MaxAllocations = DefaultMaxAllocations
	}
	if cfg.MaxAllocationsPerUser <= 0 {
		cfg.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	bind := cfg.RelayIP
	if !bind.IsValid() {
		bind = netip.IPv4Unspecified()
		if pc != nil {
			if a, ok := pc.LocalAddr().(*net.UDPAddr); ok {
				bind = a.AddrPort().Addr().Unmap()
			}
		}
	}
	public := cfg.PublicIP
	if !public.IsValid() {
		if bind.IsUnspecified() {
			return nil, errors.New("relay: PublicIP is required when relayed sockets bind all interfaces")
		}
		public = bind
	}
	s := &Server{cfg: cfg, log: cfg.Logger, users: make(map[string]int)}
	gen := &limitedGenerator{
		inner: &turn.RelayAddressGeneratorPortRange{
			RelayAddress: net.IP(public.AsSlice()),
			Address:      bind.String(),
			MinPort:      max(cfg.PortMin, 1),
			MaxPort:      portMax(cfg.PortMax),
		},
		s: s,
	}
	perm := s.permitted
	sc := turn.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(string(cfg.Secret), pionLogger{s.log}),
		QuotaHandler:  s.quota,
		LoggerFactory: pionLoggerFactory{s.log},
		EventHandler: turn.EventHandler{
			OnAllocationCreated: func(src, dst net.Addr, proto, user, realm string, relayed net.Addr, _ int) {
				s.count(user)
				s.log.Debug("relay: allocation", "client", src, "proto", proto, "relayed", relayed)
			},
			OnAllocationDeleted: func(src, dst net.Addr, proto, user, realm string) {
				s.release(user)
			},
		},
	}
	if pc != nil {
		sc.PacketConnConfigs = []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: gen, PermissionHandler: perm}}
	}
	if l != nil {
		sc.ListenerConfigs = []turn.ListenerConfig{{Listener: l, RelayAddressGenerator: gen, PermissionHandler: perm}}
	}
	ts, err := turn.NewServer(sc)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	s.turn = ts
	return s, nil
}

func portMax(p uint16) uint16 {
	if p == 0 {
		return 65535
	}
	return p
}

// Allocations is how many allocations are live.
func (s *Server) Allocations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allocs
}

// Close ends every allocation and closes the listeners.
func (s *Server) Close() error { return s.turn.Close() }

// quota admits an allocation for user while both caps allow it. Allocations
// are counted when made (count), so one that fails after admission holds no
// place.
func (s *Server) quota(username, _ string, src net.Addr) bool {
	user := userOf(username)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.allocs >= s.cfg.MaxAllocations || s.users[user] >= s.cfg.MaxAllocationsPerUser {
		s.log.Info("relay: allocation refused by quota", "client", src, "user", user)
		return false
	}
	return true
}

func (s *Server) count(username string) {
	user := userOf(username)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocs++
	s.users[user]++
}

func (s *Server) release(username string) {
	user := userOf(username)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[user] == 0 {
		return
	}
	s.allocs--
	if s.users[user]--; s.users[user] == 0 {
		delete(s.users, user)
	}
}

// userOf is the user part of a TURN REST username ("<expiry>:<user>"): the
// quotas count a user's allocations whatever the expiry of the credentials
// each was made with, so fresh credentials do not buy more allocations.
func userOf(username string) string {
	if i := strings.IndexByte(username, ':'); i >= 0 {
		return username[i+1:]
	}
	return username
}

// permitted refuses peers in the operator's own networks unless allowed.
func (s *Server) permitted(client net.Addr, peer net.IP) bool {
	if s.cfg.AllowPrivatePeers {
		return true
	}
	a, ok := netip.AddrFromSlice(peer)
	if !ok {
		return false
	}
	a = a.Unmap()
	return !(a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() || a.IsMulticast())
}
