//go:build linux

package natprobe_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/nslab"
	"github.com/p2phttp/p2phttp/rendezvous/natprobe"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

// The probe behind each kind of NAT of the lab reports the mapping and filtering that NAT has, and whether it
// hairpins, against the signalling server's STUN responder (two ports of one address) on the lab's internet.
func TestProbeBehindNATs(t *testing.T) {
	nslab.RequireAvailable(t)
	cases := []struct {
		nat       nslab.NATType
		hairpin   bool
		mapping   natprobe.Mapping
		filtering natprobe.Filtering
	}{
		{nslab.FullCone, false, natprobe.MappingEndpointIndependent, natprobe.FilteringAddressOnly},
		{nslab.RestrictedCone, false, natprobe.MappingEndpointIndependent, natprobe.FilteringAddressOnly},
		{nslab.PortRestrictedCone, false, natprobe.MappingEndpointIndependent, natprobe.FilteringAddressAndPort},
		{nslab.PortRestrictedCone, true, natprobe.MappingEndpointIndependent, natprobe.FilteringAddressAndPort},
		{nslab.Symmetric, false, natprobe.MappingDestinationDependent, natprobe.FilteringAddressAndPort},
	}
	cfg := nslab.Config{}
	for i, c := range cases {
		cfg.Routers = append(cfg.Routers, nslab.RouterConfig{NAT: c.nat, Hairpin: c.hairpin,
			Peers: []nslab.PeerConfig{{Name: string(rune('a' + i))}}})
	}
	lab := nslab.Start(t, cfg)

	srv := signalserver.New(signalserver.Config{STUNRatePerIP: -1})
	var pc, alt net.PacketConn
	require.NoError(t, lab.Public.Do(func() (err error) {
		if pc, err = net.ListenPacket("udp4", netip.AddrPortFrom(nslab.PublicAddr, 3478).String()); err != nil {
			return err
		}
		alt, err = net.ListenPacket("udp4", netip.AddrPortFrom(nslab.PublicAddr, 3479).String())
		return err
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeSTUNPair(ctx, pc, alt) }()
	t.Cleanup(func() { cancel(); <-done; pc.Close(); alt.Close(); srv.Close() })

	for i, c := range cases {
		name := c.nat.String()
		if c.hairpin {
			name += ", hairpinning"
		}
		t.Run(name, func(t *testing.T) {
			peer, router := lab.Peer(string(rune('a'+i))), lab.Routers[i]
			var res natprobe.Result
			var err error
			require.NoError(t, peer.Do(func() error {
				pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				res, err = natprobe.Probe(pctx, natprobe.Config{Server: netip.AddrPortFrom(nslab.PublicAddr, 3478).String(),
					Retransmit: 100 * time.Millisecond})
				return nil
			}))
			require.NoError(t, err)
			assert.Equal(t, router.WAN, res.Mapped.Addr(), "the server saw the router's public address")
			assert.Equal(t, uint16(3479), res.Other.Port())
			assert.Equal(t, c.mapping, res.Mapping, "mapping")
			assert.Equal(t, c.filtering, res.Filtering, "filtering")
			require.NotNil(t, res.Hairpin)
			assert.Equal(t, c.hairpin, *res.Hairpin, "hairpin")
			t.Logf("%s: mapped %s, mapping %s, filtering %s, hairpin %v, notes %q", name, res.Mapped, res.Mapping, res.Filtering, *res.Hairpin, res.Notes)
		})
	}
}
