//go:build linux

package nslab_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/p2phttp/p2phttp/internal/nslab"
)

// Two peers behind port-restricted cone NATs, one of them on a slow, lossy link; a command runs inside each
// namespace with Host.Command. (Needs root and nftables, so it is compiled but not run by go test.)
func ExampleNew() {
	ctx := context.Background()
	lab, err := nslab.New(ctx, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "alice"}}},
		{NAT: nslab.Symmetric, Peers: []nslab.PeerConfig{{
			Name: "bob",
			Up:   &nslab.Impairment{Delay: 40 * time.Millisecond, Loss: 0.01},
		}}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer lab.Close()

	fmt.Println("alice is", lab.Peer("alice").Addr, "behind", lab.Routers[0].WAN)
	out, err := lab.Peer("bob").Command(ctx, "ip", "route").Output()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bob's routes:\n%s", out)
}
