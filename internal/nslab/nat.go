package nslab

import (
	"fmt"
	"strings"
)

// NATType is a router's UDP mapping and filtering behaviour (RFC 4787 terms in the comments).
type NATType int

const (
	// PortRestrictedCone maps endpoint-independently (the source port is kept when free) and lets in only
	// packets from an address:port the inside host has sent to. The most common home router.
	PortRestrictedCone NATType = iota
	// FullCone maps endpoint-independently and lets in packets from anyone once a mapping exists.
	FullCone
	// RestrictedCone maps endpoint-independently and lets in packets from any port of an address the
	// inside host has sent to.
	RestrictedCone
	// Symmetric gives every destination its own random external port and lets in only replies from
	// that destination: hole punching between two of them cannot work.
	Symmetric
)

// String returns the usual name of the NAT type, e.g. "port-restricted cone".
func (n NATType) String() string {
	switch n {
	case PortRestrictedCone:
		return "port-restricted cone"
	case FullCone:
		return "full cone"
	case RestrictedCone:
		return "restricted cone"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATType(%d)", int(n))
}

// mappingTimeout is how long an idle UDP mapping stays in the router's tables (Linux conntrack keeps an
// answered UDP flow 120 s by default; the router's own maps follow that).
const mappingTimeout = "120s"

// natRuleset returns the nftables ruleset for r. Every type shares the same skeleton:
//   - Unsolicited packets to the router itself are dropped (no ICMP), like a home router. Accepting them
//     would let a peer's early punch packet create a conntrack entry for the WAN port, after which the
//     router's own outbound mapping would have to pick another port and break cone-to-cone punching.
//   - Conntrack plus masquerade give the mapping; conntrack alone gives address-and-port-dependent filtering.
//   - The "mapping" map (public port -> inside address.port, read after NAT from conntrack's original tuple)
//     and the "allowed" set (public port . remote address) give the looser filters and hairpinning.
func natRuleset(r *Router) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	needMap := r.NAT == FullCone || r.NAT == RestrictedCone || r.Hairpin
	w("table ip lab {")
	if needMap {
		w("  map mapping { type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout %s; }", mappingTimeout)
	}
	if r.NAT == RestrictedCone {
		w("  set allowed { type inet_service . ipv4_addr; flags dynamic,timeout; timeout %s; }", mappingTimeout)
	}
	w("  chain input {")
	w("    type filter hook input priority filter; policy drop;")
	w("    ct state established,related accept")
	w("    iif lo accept")
	w("    iifname lan icmp type echo-request accept")
	w("  }")
	w("  chain forward {")
	w("    type filter hook forward priority filter; policy drop;")
	if r.BlockUDP {
		w("    meta l4proto udp drop")
	}
	w("    ct state established,related accept")
	w("    ct status dnat accept")
	w("    iifname lan oifname wan accept")
	w("  }")
	if needMap {
		// After source NAT (priority srcnat + 10) the packet carries the public port; conntrack's original
		// tuple still has the inside endpoint. Updating on every packet refreshes the timeout like conntrack.
		w("  chain track {")
		w("    type filter hook postrouting priority srcnat + 10;")
		w("    oifname wan meta l4proto udp update @mapping { udp sport : ct original ip saddr . ct original proto-src }")
		if r.NAT == RestrictedCone {
			w("    oifname wan meta l4proto udp update @allowed { udp sport . ip daddr }")
		}
		w("  }")
	}
	w("  chain prerouting {")
	w("    type nat hook prerouting priority dstnat;")
	switch r.NAT {
	case FullCone:
		w("    iifname wan meta l4proto udp dnat ip addr . port to udp dport map @mapping")
	case RestrictedCone:
		w("    iifname wan meta l4proto udp udp dport . ip saddr @allowed dnat ip addr . port to udp dport map @mapping")
	}
	if r.Hairpin {
		w("    iifname lan ip daddr %s meta l4proto udp dnat ip addr . port to udp dport map @mapping", r.WAN)
	}
	w("  }")
	w("  chain postrouting {")
	w("    type nat hook postrouting priority srcnat;")
	if r.NAT == Symmetric {
		w("    oifname wan masquerade fully-random")
	} else {
		w("    oifname wan masquerade")
	}
	if r.Hairpin {
		// The receiver sees the sender's public address; the source port is kept when free, which is the
		// sender's public port under these endpoint-independent mappings.
		// (No iifname in postrouting: the hook has no input interface.)
		w("    oifname lan ip saddr %s ct status dnat snat ip to %s", r.LAN, r.WAN)
	}
	w("  }")
	w("}")
	return b.String()
}
