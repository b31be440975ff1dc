package relay

import (
	"bytes"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pion/turn/v4"
	"github.com/stretchr/testify/require"
)

var secret = []byte("test secret shared by every instance")

// startRelay runs a relay on loopback UDP and TCP ports of its own.
func startRelay(t *testing.T, cfg Config) (*Server, *net.UDPAddr, *net.TCPAddr) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	if cfg.Secret == nil {
		cfg.Secret = secret
	}
	s, err := New(cfg, pc, l)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, pc.LocalAddr().(*net.UDPAddr), l.Addr().(*net.TCPAddr)
}

// dialUDP is a TURN client over UDP.
func dialUDP(t *testing.T, server *net.UDPAddr, cred Credentials) *turn.Client {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	return newClient(t, pc, server.String(), cred)
}

// dialTCP is a TURN client over a TCP connection (RFC 8656 section 3.1's TCP transport to the server).
func dialTCP(t *testing.T, server *net.TCPAddr, cred Credentials) *turn.Client {
	t.Helper()
	c, err := net.Dial("tcp4", server.String())
	require.NoError(t, err)
	return newClient(t, turn.NewSTUNConn(c), server.String(), cred)
}

func newClient(t *testing.T, pc net.PacketConn, server string, cred Credentials) *turn.Client {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: server, STUNServerAddr: server,
		Username: cred.Username, Password: cred.Password, Realm: DefaultRealm,
		Conn: pc, RTO: 100 * time.Millisecond, LoggerFactory: pionLoggerFactory{slog.New(slog.DiscardHandler)},
	})
	require.NoError(t, err)
	require.NoError(t, c.Listen())
	t.Cleanup(func() { c.Close(); pc.Close() })
	return c
}

func mint(t *testing.T, user string, ttl time.Duration) Credentials {
	t.Helper()
	cred, err := NewCredentials(secret, user, ttl)
	require.NoError(t, err)
	return cred
}

// roundTrip relays one datagram each way between the allocation and a plain
// UDP peer, and checks the bytes.
func roundTrip(t *testing.T, relayed net.PacketConn) {
	t.Helper()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer peer.Close()

	out := []byte("sealed datagram from the client")
	_, err = relayed.WriteTo(out, peer.LocalAddr())
	require.NoError(t, err)
	buf := make([]byte, 1500)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, out, buf[:n])
	require.Equal(t, relayed.LocalAddr().String(), from.String(), "the peer sees the relayed address")

	back := []byte("and the peer's answer")
	_, err = peer.WriteTo(back, from)
	require.NoError(t, err)
	relayed.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err = relayed.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, back, buf[:n])
	require.Equal(t, peer.LocalAddr().String(), from.String())
}

func TestRelayOverUDPAndTCP(t *testing.T) {
	s, udp, tcp := startRelay(t, Config{AllowPrivatePeers: true})
	cred := mint(t, "meeting-1", time.Minute)

	a, err := dialUDP(t, udp, cred).Allocate()
	require.NoError(t, err)
	roundTrip(t, a)

	b, err := dialTCP(t, tcp, cred).Allocate()
	require.NoError(t, err)
	roundTrip(t, b)
	require.Equal(t, 2, s.Allocations())
}

func TestCredentialsVerifyOnAnyRelayWithTheSecret(t *testing.T) {
	// Minted without either relay: what a signalling instance does.
	cred := mint(t, "meeting-2", time.Minute)
	for range 2 {
		_, udp, _ := startRelay(t, Config{AllowPrivatePeers: true})
		a, err := dialUDP(t, udp, cred).Allocate()
		require.NoError(t, err)
		roundTrip(t, a)
	}
}

func TestBadCredentialsRefused(t *testing.T) {
	_, udp, _ := startRelay(t, Config{AllowPrivatePeers: true})
	good := mint(t, "meeting-3", time.Minute)

	wrongPass := good
	wrongPass.Password = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
	otherSecret, err := NewCredentials([]byte("another deployment"), "meeting-3", time.Minute)
	require.NoError(t, err)
	expired, err := NewCredentials(secret, "meeting-3", time.Nanosecond)
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond) // the expiry has one-second resolution

	for name, cred := range map[string]Credentials{"wrong password": wrongPass, "other secret": otherSecret, "expired": expired} {
		t.Run(name, func(t *testing.T) {
			_, err := dialUDP(t, udp, cred).Allocate()
			require.Error(t, err)
		})
	}
}

// The quota counts a user's allocations whatever the expiry of the credentials each was made with: fresh
// credentials (a host gets new ones with every poll) buy no more.
func TestQuotaPerUserAcrossExpiries(t *testing.T) {
	_, udp, _ := startRelay(t, Config{AllowPrivatePeers: true, MaxAllocationsPerUser: 1})
	_, err := dialUDP(t, udp, mint(t, "peer-1", time.Minute)).Allocate()
	require.NoError(t, err)
	fresh := mint(t, "peer-1", 2*time.Minute)
	require.NotEqual(t, mint(t, "peer-1", time.Minute).Username, fresh.Username)
	_, err = dialUDP(t, udp, fresh).Allocate()
	require.Error(t, err, "the same user with fresher credentials is over the quota")
}

func TestQuotaPerCredential(t *testing.T) {
	s, udp, _ := startRelay(t, Config{AllowPrivatePeers: true, MaxAllocationsPerUser: 1})
	cred := mint(t, "meeting-4", time.Minute)
	first := dialUDP(t, udp, cred)
	a, err := first.Allocate()
	require.NoError(t, err)
	_, err = dialUDP(t, udp, cred).Allocate()
	require.Error(t, err, "a second allocation on one meeting's credentials is over the quota")

	_, err = dialUDP(t, udp, mint(t, "meeting-5", time.Minute)).Allocate()
	require.NoError(t, err, "another meeting has a quota of its own")

	require.NoError(t, a.Close()) // deallocates (a zero-lifetime refresh)
	require.Eventually(t, func() bool { return s.Allocations() == 1 }, 5*time.Second, 20*time.Millisecond)
	_, err = dialUDP(t, udp, cred).Allocate()
	require.NoError(t, err, "the freed place can be used again")
}

func TestGlobalQuota(t *testing.T) {
	_, udp, _ := startRelay(t, Config{AllowPrivatePeers: true, MaxAllocations: 1})
	_, err := dialUDP(t, udp, mint(t, "m-a", time.Minute)).Allocate()
	require.NoError(t, err)
	_, err = dialUDP(t, udp, mint(t, "m-b", time.Minute)).Allocate()
	require.Error(t, err)
}

func TestPrivatePeersRefusedByDefault(t *testing.T) {
	_, udp, _ := startRelay(t, Config{})
	c := dialUDP(t, udp, mint(t, "meeting-6", time.Minute))
	a, err := c.Allocate()
	require.NoError(t, err)
	err = c.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
	require.Error(t, err, "a permission towards loopback is refused")
	_ = a
}

func TestMaxLifetimeEndsAllocation(t *testing.T) {
	s, udp, _ := startRelay(t, Config{AllowPrivatePeers: true, MaxLifetime: 300 * time.Millisecond})
	a, err := dialUDP(t, udp, mint(t, "meeting-7", time.Minute)).Allocate()
	require.NoError(t, err)
	roundTrip(t, a)
	require.Eventually(t, func() bool { return s.Allocations() == 0 }, 5*time.Second, 20*time.Millisecond)

	// The relayed port no longer carries anything to the client.
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer peer.Close()
	peer.WriteTo([]byte("too late"), a.LocalAddr())
	a.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _, err = a.ReadFrom(make([]byte, 100))
	require.Error(t, err)
}

func TestRateLimitDropsExcess(t *testing.T) {
	const limit = 10 << 10 // 10 KiB/s; the burst is the 64 KiB floor
	_, udp, _ := startRelay(t, Config{AllowPrivatePeers: true, RateLimit: limit})
	a, err := dialUDP(t, udp, mint(t, "meeting-8", time.Minute)).Allocate()
	require.NoError(t, err)
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer peer.Close()

	got := make(chan int)
	go func() {
		n, buf := 0, make([]byte, 1500)
		for {
			peer.SetReadDeadline(time.Now().Add(time.Second))
			m, _, err := peer.ReadFrom(buf)
			if err != nil {
				got <- n
				return
			}
			n += m
		}
	}()
	// 400 KB from the client, gently enough that loopback loses none of it
	// unlimited, and in a few seconds at most: the limit lets through the
	// burst and some 10 KiB a second, far below what was sent.
	payload := bytes.Repeat([]byte{'x'}, 1000)
	for i := range 400 {
		_, err := a.WriteTo(payload, peer.LocalAddr())
		require.NoError(t, err)
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	n := <-got
	require.Greater(t, n, 0)
	require.Less(t, n, 200_000, "the rate limit let through %d of 400,000 bytes", n)
}

func TestConfigErrors(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	_, err = New(Config{}, pc, nil)
	require.ErrorIs(t, err, ErrNoSecret)
	_, err = New(Config{Secret: secret}, nil, nil)
	require.Error(t, err)
	_, err = NewCredentials(nil, "m", time.Minute)
	require.ErrorIs(t, err, ErrNoSecret)

	all, err := net.ListenPacket("udp4", ":0")
	require.NoError(t, err)
	defer all.Close()
	_, err = New(Config{Secret: secret}, all, nil)
	require.ErrorContains(t, err, "PublicIP")
}
