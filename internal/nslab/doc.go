// Package nslab builds a small internet inside Linux network namespaces for end-to-end tests: a public
// namespace with a bridge (the internet, 203.0.113.0/24), routers that NAT their LAN onto it with a chosen
// behaviour (port-restricted cone, full cone, restricted cone, symmetric; hairpinning on or off), peers behind
// them, and optional link impairment (delay, jitter, loss, reordering, rate) between a peer and its router,
// applied by a userspace forwarder built on internal/netem's packet scheduler, because these kernels have
// no netem qdisc.
//
// [Paths] lists the standard two-peer paths (clean, a drop-tail bottleneck, random loss at medium and long RTTs,
// reordering, a large bandwidth-delay product) that bench/transportlab compares transports on and the
// integration tests check p2phttp over.
//
// Nothing in a lab is connected to the host's own network: every link joins two lab namespaces. Each lab
// is named after the process id and a sequence number, is torn down by Close (or by the cleanup Start
// registers), and namespaces left behind by a process that died are removed when the next lab is built.
//
// Building a lab needs root, the ip command (iproute2) and the nft command (nftables); Available reports
// what is missing.
package nslab
