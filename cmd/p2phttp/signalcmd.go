package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/p2phttp/p2phttp/signal/signalserver"
)

const signalHelp = `Usage: p2phttp signal [--http ADDR] [--stun ADDR] [--redis URL] [flags]

Run the signalling server that peers meet at: an HTTP/JSON API on --http and a STUN responder on UDP --stun, which
peers use to learn their public address. It is a blind mailbox: it sees the nameplate (the number at the front of a
code) and small sealed messages, never the code's secret words, a key or an address. Runs until Ctrl-C, then hands
the peers that wait on it back to their clients (they post again) and stops.

Without --redis, nameplates and meetings live in this process. With --redis, they live in Redis, and any number of
servers on the same Redis (behind a plain load balancer) serve one namespace: peers that reach different servers
meet, and a server that dies loses nothing. The caps on waiting requests and the rates are per server.

Examples:
  p2phttp signal                                   # HTTP on :8080, STUN on :3478
  p2phttp signal --http 127.0.0.1:9000 --stun 127.0.0.1:9478 -v
  p2phttp signal --redis redis://127.0.0.1:6379/0  # one of several servers on one Redis
  p2phttp signal --redis redis://redis:6379/0 --trusted-proxy 10.0.0.0/8   # behind a load balancer that sets X-Forwarded-For
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

func runSignal(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("signal", signalHelp)
	var lf logFlags
	lf.register(fs)
	httpAddr := fs.String("http", ":8080", "TCP `ADDR` for the HTTP API")
	stunAddr := fs.String("stun", ":3478", "UDP `ADDR` for the STUN responder")
	redisURL := fs.String("redis", "", "keep nameplates and meetings in the Redis at `URL` (redis://HOST:PORT/DB) instead of in this process")
	var cfg signalserver.Config
	signalFlags(fs, &cfg)
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	for _, a := range []struct{ flag, addr string }{{"--http", *httpAddr}, {"--stun", *stunAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return usagef("%s %q is not HOST:PORT (or :PORT)", a.flag, a.addr)
		}
	}
	var bad string
	fs.Visit(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok && bad == "" {
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
	if cfg.WriteTimeout <= cfg.PollWait {
		cfg.WriteTimeout = cfg.PollWait + 10*time.Second // a long-poll must be able to answer
	}
	log := lf.logger(env)
	cfg.Logger = log
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
	fmt.Fprintf(env.stderr, "p2phttp: signalling server on http %s, STUN on udp %s, rooms %s; stop with Ctrl-C\n", *httpAddr, *stunAddr, where)
	if err := srv.ListenAndServe(ctx, *httpAddr, *stunAddr); err != nil && ctx.Err() == nil {
		return fmt.Errorf("signalling server: %s; is another server using the port? pick others with --http and --stun", err)
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
