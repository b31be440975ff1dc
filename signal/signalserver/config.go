package signalserver

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/signal/relay"
)

// DefaultRelayRenewFor is how long after its meeting a guest may renew its
// relay credentials, by default.
const DefaultRelayRenewFor = 12 * time.Hour

// Config holds a Server's store and limits. The zero value of every field
// means its default, safe for a small public server. Limits on parked polls
// and rates are per server: N servers on one store admit N times as many.
type Config struct {
	// Store keeps nameplates and meetings. Default: a MemoryStore of the
	// Server's own (one process). Servers sharing a RedisStore serve one
	// namespace. The Server does not close a Store it was given.
	Store Store

	// PollWait is how long a long-poll waits before the server answers 202
	// (post again). Default signal.DefaultPollWait (25 s), under the 30 s
	// idle timeout of common proxies and NATs.
	PollWait time.Duration
	// Grace is how long a peer stays present after a poll of its returned,
	// and how long a meeting side whose parked poll hung up has to come back.
	// Default signal.DefaultGrace (5 s).
	Grace time.Duration
	// MeetingTTL is the longest a meeting lives. Default
	// signal.DefaultMeetingTTL (2 minutes).
	MeetingTTL time.Duration
	// MaxMessages caps the messages each side of a meeting sends. Default
	// signal.DefaultMaxMessages (16); at most that.
	MaxMessages int
	// MaxGuestsPerNameplate caps the guests waiting at or meeting the host
	// of one nameplate at once; beyond it a guest gets 409 "nameplate full".
	// Default 16.
	MaxGuestsPerNameplate int
	// MaxRecords caps the nameplates and meetings in the store (all servers
	// sharing it together); beyond it a request that would add one gets 503.
	// Default 100,000.
	MaxRecords int

	// MaxParked caps the long-polls parked on this server at once (each
	// holds a connection and a file descriptor). Default 50,000; beyond it,
	// 503 with Retry-After.
	MaxParked int
	// MaxParkedPerIP caps the parked long-polls of one client: an IPv4
	// address or an IPv6 /64. Default 16; beyond it, 429 with Retry-After.
	MaxParkedPerIP int
	// MaxParkedPerIPv6Net caps the parked long-polls of one IPv6 /56 (an
	// end site's usual allocation, so one subscriber cannot multiply its /64
	// cap). Default 64.
	MaxParkedPerIPv6Net int
	// RatePerIP is the sustained requests per second one client (IPv4
	// address or IPv6 /64) may make to the API, in a token bucket of
	// RateBurst. Default 5 and 20; a negative RatePerIP disables the rate
	// limits. Over it: 429 with Retry-After.
	RatePerIP float64
	RateBurst int
	// RatePerIPv6Net and RateBurstIPv6Net limit one IPv6 /56 likewise.
	// Default 20 and 80.
	RatePerIPv6Net   float64
	RateBurstIPv6Net int
	// RoomRatePerIP limits how fast one client (IPv4 address or IPv6 /64)
	// may claim nameplates and open meetings (per second, bucket of
	// RoomBurst). Default 0.5 and 10; negative disables. With the parked cap
	// (a claim lives only while its host polls) it bounds the rooms one
	// client holds.
	RoomRatePerIP float64
	RoomBurst     int
	// PeerRate is the sustained requests per second one peer may make in
	// one meeting (send, recv, close) and a host may poll the nameplate it
	// holds, in a token bucket of PeerBurst. These do not count against
	// RatePerIP, so that a host meeting many guests from one address is not
	// throttled; a meeting request naming a meeting the client is not in
	// costs a token of a RatePerIP-sized bucket of its address, which must
	// have one left. Default 10 and 40; negative disables.
	PeerRate  float64
	PeerBurst int
	// STUNRatePerIP and STUNBurst limit the STUN answers to one IPv4
	// address or IPv6 /64 (answers are bigger than requests, so this caps
	// reflection). Default 5 and 20; negative disables.
	STUNRatePerIP float64
	STUNBurst     int
	// LimiterSlots is the number of token buckets of each rate limiter.
	// Clients hash into them (a seeded hash, so no one can aim at another's
	// bucket), which bounds the limiters' memory whatever the number of
	// sources (8 bytes each, plus about 100 per bucket in use). Default 65,536.
	LimiterSlots int
	// TrustedProxies lists the load balancers whose X-Forwarded-For header
	// names the client. Default none: the client is the TCP peer.
	TrustedProxies []netip.Prefix

	// PublicIP is the server's public address, put in STUN's OTHER-ADDRESS
	// (see ServeSTUNPair) when the STUN sockets bind all interfaces. Unset,
	// OTHER-ADDRESS then carries the unspecified address and the right port,
	// which is all that p2phttp's NAT probe reads.
	PublicIP netip.Addr

	// RelayURLs are the TURN URIs (RFC 7065, e.g.
	// "turn:203.0.113.9:3480?transport=udp") of the deployment's relay. When
	// set, every host poll's answer and every guest's meeting carry fresh
	// credentials for it (signal.RelayInfo), minted with RelaySecret. Empty:
	// the server tells peers of no relay.
	RelayURLs []string
	// RelaySecret is the secret the relays check the credentials with
	// (signal/relay's Config.Secret): every signalling server and relay of a
	// deployment shares it. Required with RelayURLs.
	RelaySecret []byte
	// RelayCredentialTTL is how long minted credentials last. Default
	// relay.DefaultCredentialTTL (10 minutes); a host gets new ones with
	// every poll.
	RelayCredentialTTL time.Duration
	// RelayRenewFor is how long after its meeting a guest may renew its relay
	// credentials (signal.RelayPath): the longest a relayed session lasts.
	// Default DefaultRelayRenewFor.
	RelayRenewFor time.Duration

	// StoreTimeout bounds one store operation. Default 3 s.
	StoreTimeout time.Duration
	// HTTP server timeouts used by Serve and ListenAndServe (slowloris
	// protection): ReadHeaderTimeout default 5 s; ReadTimeout (whole request,
	// before a long-poll starts waiting) default 10 s; WriteTimeout default
	// PollWait + 10 s; IdleTimeout (keep-alive) default 60 s.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes caps request headers. Default 8 KiB (431 beyond).
	MaxHeaderBytes int
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// after its context ends. Default 10 s.
	ShutdownTimeout time.Duration
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	dur := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	num := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	rate := func(p *float64, d float64) {
		if *p == 0 {
			*p = d
		}
	}
	dur(&c.PollWait, signal.DefaultPollWait)
	dur(&c.Grace, signal.DefaultGrace)
	dur(&c.MeetingTTL, signal.DefaultMeetingTTL)
	if c.MaxMessages <= 0 || c.MaxMessages > signal.DefaultMaxMessages {
		c.MaxMessages = signal.DefaultMaxMessages
	}
	num(&c.MaxGuestsPerNameplate, 16)
	num(&c.MaxRecords, 100_000)
	num(&c.MaxParked, 50_000)
	num(&c.MaxParkedPerIP, 16)
	num(&c.MaxParkedPerIPv6Net, 64)
	rate(&c.RatePerIP, 5)
	num(&c.RateBurst, 20)
	rate(&c.RatePerIPv6Net, 20)
	num(&c.RateBurstIPv6Net, 80)
	rate(&c.RoomRatePerIP, 0.5)
	num(&c.RoomBurst, 10)
	rate(&c.PeerRate, 10)
	num(&c.PeerBurst, 40)
	rate(&c.STUNRatePerIP, 5)
	num(&c.STUNBurst, 20)
	num(&c.LimiterSlots, 65_536)
	dur(&c.RelayCredentialTTL, relay.DefaultCredentialTTL)
	dur(&c.RelayRenewFor, DefaultRelayRenewFor)
	dur(&c.StoreTimeout, 3*time.Second)
	dur(&c.ReadHeaderTimeout, 5*time.Second)
	dur(&c.ReadTimeout, 10*time.Second)
	dur(&c.WriteTimeout, c.PollWait+10*time.Second)
	dur(&c.IdleTimeout, 60*time.Second)
	dur(&c.ShutdownTimeout, 10*time.Second)
	num(&c.MaxHeaderBytes, 8<<10)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// DefaultConfig returns the defaults that New gives the zero Config's
// fields (Store and Logger stay nil).
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	c.Logger = nil
	return c
}
