//go:build linux

package nslab

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Impairment describes what a link does to the frames crossing it, in each direction independently
// (like netem on both ends).
type Impairment struct {
	// Delay is added to every frame.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter) per frame; frames overtake each other, so
	// jitter larger than the gap between frames reorders them.
	Jitter time.Duration
	// Loss is the probability in [0, 1) that a frame is dropped.
	Loss float64
	// Limit is how many frames may wait in one direction; more are dropped (counted as Overflowed).
	// Default 4096.
	Limit int
	// Seed seeds the random loss and jitter so a run can be repeated; 0 picks a random seed.
	Seed uint64
}

func (im Impairment) validate() error {
	switch {
	case im.Delay < 0 || im.Delay > time.Minute:
		return fmt.Errorf("delay %v out of range [0, 1m]", im.Delay)
	case im.Jitter < 0 || im.Jitter > time.Minute:
		return fmt.Errorf("jitter %v out of range [0, 1m]", im.Jitter)
	case !(im.Loss >= 0 && im.Loss < 1):
		return fmt.Errorf("loss %v out of range [0, 1)", im.Loss)
	case im.Limit < 0:
		return fmt.Errorf("negative queue limit %d", im.Limit)
	}
	return nil
}

// DirectionStats counts the frames of one direction of a Link.
type DirectionStats struct {
	Received   uint64 // frames read from the incoming interface
	Lost       uint64 // dropped by the Loss draw
	Overflowed uint64 // dropped because Limit frames were already waiting
	Delivered  uint64 // written to the outgoing interface
	Failed     uint64 // write errors (e.g. a frame larger than the MTU)
}

// LinkStats are the counters of both directions of a Link.
type LinkStats struct {
	ToRouter DirectionStats // frames the peer sent
	ToPeer   DirectionStats // frames the router sent
}

// Link is the userspace forwarder between a peer and its router. It bridges two interfaces of a small
// "wire" namespace with AF_PACKET sockets, copying whole Ethernet frames and applying an Impairment.
type Link struct {
	toRouter, toPeer *direction
	closeOnce        sync.Once
	wg               sync.WaitGroup
}

// Stats returns the counters so far.
func (l *Link) Stats() LinkStats {
	return LinkStats{ToRouter: l.toRouter.stats(), ToPeer: l.toPeer.stats()}
}

// Close stops the forwarder and waits for its goroutines.
func (l *Link) Close() {
	l.closeOnce.Do(func() {
		l.toRouter.close()
		l.toPeer.close()
		l.wg.Wait()
	})
}

// startLink opens packet sockets on peerIf and routerIf inside w and forwards between them.
func startLink(w *Host, peerIf, routerIf string, im Impairment) (*Link, error) {
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
	seed := im.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	if im.Limit == 0 {
		im.Limit = 4096
	}
	l := &Link{
		toRouter: newDirection(peerSock, routerSock, im, seed),
		toPeer:   newDirection(routerSock, peerSock, im, seed+1),
	}
	for _, d := range []*direction{l.toRouter, l.toPeer} {
		l.wg.Add(2)
		go func() { defer l.wg.Done(); d.readLoop() }()
		go func() { defer l.wg.Done(); d.writeLoop() }()
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

// direction forwards frames from in to out after the impairment's loss draw and delay.
type direction struct {
	in, out *os.File
	im      Impairment
	rng     *rand.Rand // used by readLoop only

	mu     sync.Mutex
	queue  frameQueue
	seq    uint64
	wake   chan struct{} // capacity 1: "the queue head may have changed"
	done   chan struct{}
	closed atomic.Bool

	received, lost, overflowed, delivered, failed atomic.Uint64
}

func newDirection(in, out *os.File, im Impairment, seed uint64) *direction {
	return &direction{
		in: in, out: out, im: im,
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

func (d *direction) stats() DirectionStats {
	return DirectionStats{
		Received: d.received.Load(), Lost: d.lost.Load(), Overflowed: d.overflowed.Load(),
		Delivered: d.delivered.Load(), Failed: d.failed.Load(),
	}
}

func (d *direction) close() {
	if d.closed.CompareAndSwap(false, true) {
		close(d.done)
		d.in.Close() // each socket is the in of exactly one direction
	}
}

func (d *direction) readLoop() {
	buf := make([]byte, 70000) // virtio-net header + up to a 64 KiB super-frame
	for {
		n, err := d.in.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || d.closed.Load() {
				return
			}
			continue // e.g. ENETDOWN while an interface flaps
		}
		d.received.Add(1)
		if d.im.Loss > 0 && d.rng.Float64() < d.im.Loss {
			d.lost.Add(1)
			continue
		}
		due := time.Now().Add(d.im.Delay)
		if d.im.Jitter > 0 {
			due = due.Add(time.Duration(d.rng.Int64N(int64(d.im.Jitter))))
		}
		d.mu.Lock()
		if d.queue.Len() >= d.im.Limit {
			d.mu.Unlock()
			d.overflowed.Add(1)
			continue
		}
		d.seq++
		heap.Push(&d.queue, frame{due: due, seq: d.seq, data: append([]byte(nil), buf[:n]...)})
		d.mu.Unlock()
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

func (d *direction) writeLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		var next frame
		wait := time.Duration(-1)
		if d.queue.Len() > 0 {
			next = d.queue[0]
			if wait = time.Until(next.due); wait <= 0 {
				heap.Pop(&d.queue)
			}
		}
		d.mu.Unlock()
		if wait <= 0 && next.data != nil {
			if _, err := d.out.Write(next.data); err != nil {
				if d.closed.Load() {
					return
				}
				d.failed.Add(1)
			} else {
				d.delivered.Add(1)
			}
			continue
		}
		var tick <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-d.done:
			return
		case <-d.wake:
		case <-tick:
		}
	}
}

// frame is one queued Ethernet frame; frameQueue orders frames by due time, then arrival.
type frame struct {
	due  time.Time
	seq  uint64
	data []byte
}

type frameQueue []frame

func (q frameQueue) Len() int { return len(q) }
func (q frameQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q frameQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *frameQueue) Push(x any)   { *q = append(*q, x.(frame)) }
func (q *frameQueue) Pop() any {
	old := *q
	f := old[len(old)-1]
	old[len(old)-1] = frame{}
	*q = old[:len(old)-1]
	return f
}
