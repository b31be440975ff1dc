package utp

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchReader reads the socket several datagrams per system call where the platform has one (recvmmsg), and lets
// the kernel coalesce a burst from one sender into one buffer where it can (UDP GRO, Linux): one trip through the
// stack per burst rather than per datagram. On a PacketConn that is not a plain UDP socket it reads one datagram at
// a time.
type batchReader struct {
	pc net.PacketConn
	bc interface {
		ReadBatch([]ipv4.Message, int) (int, error)
	} // nil: one ReadFrom per read
	msgs []ipv4.Message
	gro  bool           // the kernel may coalesce datagrams; each message's control data says how
	from netip.AddrPort // where the last read's datagram came from, for the single-datagram fallback
}

const (
	readBatch    = 8        // messages per recvmmsg
	readBufSize  = 64 << 10 // the largest UDP datagram, and the largest a coalesced read returns
	readOOBBytes = 64       // room for the UDP_GRO control message
)

func newBatchReader(pc net.PacketConn) *batchReader {
	r := &batchReader{pc: pc}
	uc, ok := pc.(*net.UDPConn)
	if !ok || !batchReads {
		r.msgs = []ipv4.Message{{Buffers: [][]byte{make([]byte, readBufSize)}}}
		return r
	}
	if a, ok := uc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		r.bc = ipv4.NewPacketConn(uc)
	} else {
		r.bc = ipv6.NewPacketConn(uc) // receives IPv4 too on a dual-stack socket
	}
	r.gro = enableGRO(uc)
	r.msgs = make([]ipv4.Message, readBatch)
	for i := range r.msgs {
		r.msgs[i].Buffers = [][]byte{make([]byte, readBufSize)}
		if r.gro {
			r.msgs[i].OOB = make([]byte, readOOBBytes)
		}
	}
	return r
}

// read waits for datagrams and returns how many messages it read; message returns each.
func (r *batchReader) read() (int, error) {
	if r.bc == nil {
		n, from, err := r.pc.ReadFrom(r.msgs[0].Buffers[0])
		if err != nil {
			return 0, err
		}
		ap, ok := addrPortOf(from)
		if !ok {
			return 0, nil
		}
		r.msgs[0].N, r.msgs[0].NN, r.from = n, 0, ap
		return 1, nil
	}
	for i := range r.msgs {
		if r.gro {
			r.msgs[i].OOB = r.msgs[i].OOB[:cap(r.msgs[i].OOB)]
		}
	}
	return r.bc.ReadBatch(r.msgs, 0)
}

// message returns the i-th message of the last read: its bytes, the size of each datagram in it (the kernel
// coalesced several when seg < len(b); the last may be shorter), and the sender. ok is false for a message to skip.
func (r *batchReader) message(i int) (b []byte, seg int, from netip.AddrPort, ok bool) {
	m := &r.msgs[i]
	b = m.Buffers[0][:m.N]
	if r.bc == nil {
		return b, len(b), r.from, true
	}
	if from, ok = addrPortOf(m.Addr); !ok {
		return nil, 0, from, false
	}
	seg = len(b)
	if r.gro && m.NN > 0 {
		if s := groSegmentSize(m.OOB[:m.NN]); s > 0 && s < seg {
			seg = s
		}
	}
	return b, seg, from, true
}

// datagrams calls deliver with each datagram of the last read's n messages, split where the kernel coalesced
// several.
func (r *batchReader) datagrams(n int, deliver func(b []byte, from netip.AddrPort)) {
	for i := range n {
		b, seg, from, ok := r.message(i)
		if !ok {
			continue
		}
		for { // an empty datagram is delivered (and counted) too
			k := min(seg, len(b))
			deliver(b[:k:k], from)
			if b = b[k:]; len(b) == 0 {
				break
			}
		}
	}
}

// rxBatch gathers the uTP datagrams of one read from the socket, by path, so that each path's engine takes its run
// of them at once (engine.Endpoint.DeliverDatagrams): one acknowledgement and one batched write per run, not one per
// datagram. It belongs to the goroutine that reads, and the datagrams stay in its buffers until flush.
type rxBatch struct {
	p    *Path
	bufs [][]byte
}

func (rx *rxBatch) add(p *Path, b []byte) {
	if rx.p != p {
		rx.flush()
		rx.p = p
	}
	rx.bufs = append(rx.bufs, b)
}

// flush delivers what was gathered. A nil rxBatch has nothing.
func (rx *rxBatch) flush() {
	if rx == nil || len(rx.bufs) == 0 {
		return
	}
	rx.p.eng.DeliverDatagrams(rx.bufs)
	clear(rx.bufs)
	rx.bufs, rx.p = rx.bufs[:0], nil
}
