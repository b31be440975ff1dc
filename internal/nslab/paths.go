//go:build linux

package nslab

import (
	"fmt"
	"time"
)

// FrameOverhead is what the impairment forwarder counts on top of an IP packet: the Ethernet header (14 bytes)
// and the virtio-net header the packet socket adds (10). Rates and queue sizes apply to frames of IP size plus
// FrameOverhead.
const FrameOverhead = 24

// fullFrame is a full-sized frame on the lab's 1500-byte-MTU links as the forwarder counts it.
const fullFrame = 1500 + FrameOverhead

// Path is a named path between two peers, each behind its own port-restricted cone NAT: the sender "a" on
// the first router and the receiver "b" on the second. The impairments sit on the link between each peer and
// its router; "up" is the direction away from the peer, so the sender's up direction carries the data.
type Path struct {
	Name string
	// Summary says what the path is in a few words, for tables and logs.
	Summary string
	// RTT is the round-trip time the impairments add; the lab's own is well under a millisecond.
	RTT time.Duration
	// Sender and Receiver impair the links of peers a and b (nil: a plain link).
	SenderUp, SenderDown, ReceiverUp, ReceiverDown *Impairment
}

// Paths returns the standard paths transports are compared on and tested over: a clean path, a drop-tail
// bottleneck, random loss at medium and long RTTs, loss with reordering (and the same path without the
// reordering, to see what reordering alone costs), and a large bandwidth-delay product.
func Paths() []Path {
	oneWay := func(d time.Duration, loss float64) *Impairment { return &Impairment{Delay: d, Loss: loss} }
	return []Path{
		{Name: "clean", Summary: "no impairment"},
		{
			Name: "bottleneck", Summary: "20 Mbit/s, drop-tail queue of 40 full frames",
			SenderUp: &Impairment{Rate: 20e6 / 8, QueueBytes: 40 * fullFrame},
		},
		{
			Name: "lossy80", Summary: "80 ms RTT, 1% loss each way on the receiver's link", RTT: 80 * time.Millisecond,
			SenderUp: oneWay(20*time.Millisecond, 0), SenderDown: oneWay(20*time.Millisecond, 0),
			ReceiverUp: oneWay(20*time.Millisecond, 0.01), ReceiverDown: oneWay(20*time.Millisecond, 0.01),
		},
		{
			Name: "lossy160", Summary: "160 ms RTT, 1% loss each way on both links", RTT: 160 * time.Millisecond,
			SenderUp: oneWay(40*time.Millisecond, 0.01), SenderDown: oneWay(40*time.Millisecond, 0.01),
			ReceiverUp: oneWay(40*time.Millisecond, 0.01), ReceiverDown: oneWay(40*time.Millisecond, 0.01),
		},
		{
			Name: "loss20", Summary: "20 ms RTT, 1% loss each way on the receiver's link (reorder20 without reordering)",
			RTT:        20 * time.Millisecond,
			ReceiverUp: oneWay(10*time.Millisecond, 0.01), ReceiverDown: oneWay(10*time.Millisecond, 0.01),
		},
		{
			Name: "reorder20", Summary: "20 ms RTT, 1% loss and 5% of packets held back 5 ms, each way on the receiver's link",
			RTT:        20 * time.Millisecond,
			ReceiverUp: reordering(10*time.Millisecond, 0.01, 0.05), ReceiverDown: reordering(10*time.Millisecond, 0.01, 0.05),
		},
		{
			Name: "bdp", Summary: "100 Mbit/s at 100 ms RTT, drop-tail queue of one bandwidth-delay product",
			RTT:        100 * time.Millisecond,
			SenderUp:   &Impairment{Delay: 25 * time.Millisecond, Rate: 100e6 / 8, QueueBytes: 100e6 / 8 / 10},
			SenderDown: oneWay(25*time.Millisecond, 0),
			ReceiverUp: oneWay(25*time.Millisecond, 0), ReceiverDown: oneWay(25*time.Millisecond, 0),
		},
	}
}

func reordering(d time.Duration, loss, reorder float64) *Impairment {
	return &Impairment{Delay: d, Loss: loss, Reorder: reorder, ReorderDelay: 5 * time.Millisecond}
}

// PathByName returns the path of Paths named name.
func PathByName(name string) (Path, error) {
	for _, p := range Paths() {
		if p.Name == name {
			return p, nil
		}
	}
	return Path{}, fmt.Errorf("no path named %q", name)
}

// Config returns a lab of the path: two port-restricted cone routers, sender "a" behind the first and
// receiver "b" behind the second. A non-zero seed seeds the links (seed for a's, seed+1 for b's) so a run can be
// repeated; 0 picks random seeds.
func (p Path) Config(seed uint64) Config {
	seedB := seed
	if seed != 0 {
		seedB = seed + 1
	}
	return Config{Routers: []RouterConfig{
		{NAT: PortRestrictedCone, Peers: []PeerConfig{{Name: "a", Up: p.SenderUp, Down: p.SenderDown, Seed: seed}}},
		{NAT: PortRestrictedCone, Peers: []PeerConfig{{Name: "b", Up: p.ReceiverUp, Down: p.ReceiverDown, Seed: seedB}}},
	}}
}
