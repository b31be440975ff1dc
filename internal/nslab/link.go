//go:build linux

package nslab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/p2phttp/p2phttp/internal/netem"
)

// Impairment is what a link does to the frames crossing it in one direction: loss, delay, jitter, reordering,
// duplication, a rate-limited queue, outages. See netem.Impairment; the lab runs its packet scheduler,
// netem.Link, on whole Ethernet frames.
type Impairment = netem.Impairment

// DirectionStats counts the frames of one direction of a Link.
type DirectionStats struct {
	// Received counts frames read from the incoming interface.
	Received uint64
	// Link is what the impairment did with them (Offered, Lost, QueueDrops, Delivered, ...).
	Link netem.Stats
	// Written counts frames written to the outgoing interface; Failed counts write errors.
	Written, Failed uint64
}

// LinkStats are the counters of both directions of a Link.
type LinkStats struct {
	ToRouter DirectionStats // frames the peer sent
	ToPeer   DirectionStats // frames the router sent
}

// Link is the userspace forwarder between a peer and its router. It bridges two interfaces of a small
// "wire" namespace with AF_PACKET sockets, passing whole Ethernet frames through a netem.Link per direction.
type Link struct {
	toRouter, toPeer *direction
	closeOnce        sync.Once
	readers          sync.WaitGroup
}

// Stats returns the counters so far.
func (l *Link) Stats() LinkStats {
	return LinkStats{ToRouter: l.toRouter.stats(), ToPeer: l.toPeer.stats()}
}

// Close stops the forwarder and waits for its goroutines.
func (l *Link) Close() {
	l.closeOnce.Do(func() {
		l.toRouter.in.Close() // unblocks the readers
		l.toPeer.in.Close()
		l.readers.Wait()
		l.toRouter.link.Close()
		l.toPeer.link.Close()
	})
}

// startLink opens packet sockets on peerIf and routerIf inside w and forwards between them, impairing frames
// towards the router with up and towards the peer with down (nil: no impairment).
func startLink(w *Host, peerIf, routerIf string, up, down *Impairment, seed uint64) (*Link, error) {
	var peerSock, routerSock *os.File
	err := w.Do(func() error {
		var err error
		if peerSock, err = openPacketSocket(peerIf); err != nil {
			return err
		}
		if routerSock, err = openPacketSocket(routerIf); err != nil {
			peerSock.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	l := &Link{
		toRouter: newDirection(peerSock, routerSock, up, seed),
		toPeer:   newDirection(routerSock, peerSock, down, seed+1),
	}
	for _, d := range []*direction{l.toRouter, l.toPeer} {
		l.readers.Add(1)
		go func() { defer l.readers.Done(); d.readLoop() }()
	}
	return l, nil
}

// openPacketSocket returns a non-blocking (so the runtime poller serves it and Close unblocks readers)
// AF_PACKET socket bound to ifname of the calling thread's namespace, seeing incoming frames only.
func openPacketSocket(ifname string) (*os.File, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	// Protocol 0 at creation receives nothing until bind, so no frame of another interface slips in.
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	const packetIgnoreOutgoing = 23 // PACKET_IGNORE_OUTGOING (Linux 4.20): not our own writes
	if err := syscall.SetsockoptInt(fd, syscall.SOL_PACKET, packetIgnoreOutgoing, 1); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
	}
	// Frames come with a virtio-net header carrying the checksum-offload and segmentation state, and go
	// out with it, so the kernel completes checksums a veth left partial (raw copies would arrive with bad
	// UDP checksums) and segments TCP super-frames (larger than the MTU) itself.
	const packetVnetHdr = 15 // PACKET_VNET_HDR
	if err := syscall.SetsockoptInt(fd, syscall.SOL_PACKET, packetVnetHdr, 1); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("PACKET_VNET_HDR: %w", err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<20)
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4<<20)
	all := uint16(syscall.ETH_P_ALL)
	proto := all<<8 | all>>8 // network byte order
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("binding to %s: %w", ifname, err)
	}
	return os.NewFile(uintptr(fd), "packet:"+ifname), nil
}

// direction forwards frames read from in through an impairment link to out.
type direction struct {
	in   *os.File
	link *netem.Link

	received, written, failed atomic.Uint64
}

func newDirection(in, out *os.File, im *Impairment, seed uint64) *direction {
	d := &direction{in: in}
	if im == nil {
		im = &Impairment{} // the zero value passes every frame at once
	}
	d.link = netem.NewLink(*im, seed, func(p netem.Packet) {
		if _, err := out.Write(p.Data); err != nil {
			d.failed.Add(1)
		} else {
			d.written.Add(1)
		}
	})
	return d
}

func (d *direction) stats() DirectionStats {
	return DirectionStats{
		Received: d.received.Load(), Link: d.link.Stats(),
		Written: d.written.Load(), Failed: d.failed.Load(),
	}
}

func (d *direction) readLoop() {
	buf := make([]byte, 70000) // virtio-net header + up to a 64 KiB super-frame
	for {
		n, err := d.in.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue // e.g. ENETDOWN while an interface flaps
		}
		d.received.Add(1)
		d.link.Send(netem.Packet{Data: buf[:n]}) // Send copies
	}
}
