// Package netem emulates an impaired network path for tests and benchmarks: random and burst loss, delay and
// jitter, reordering, duplication, a rate-limited bottleneck with a finite tail-drop queue, scheduled outages and an
// optional NAT-like inbound filter.
//
// The core is [Link], one direction of a path: packets handed to [Link.Send] come out of a callback after the
// impairments, on the link's own goroutine, at the time the impairments say. [Wrap] builds a [net.PacketConn] from
// two links (one per direction) around a real socket, so a transport under test runs unchanged over a bad network;
// a userspace forwarder (say, between two network namespaces) can drive Links directly.
//
// Randomness comes from a seeded generator, so the same packet sequence meets the same fate in every run. Timing
// is computed, not slept: a packet's departure from the bottleneck is the previous departure plus its size divided
// by the rate, so throughput matches the configured rate however coarse the host's timers are; only the moment a
// packet is handed over is subject to timer latency.
package netem
