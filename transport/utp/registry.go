package utp

import (
	"context"
	"errors"
	"net"
	"sync"
)

// registry is a path's stream registry: the streams alive on it, the queue of peer-opened streams waiting for
// AcceptStream, and the bookkeeping of streams the non-dialler asked the dialler to open.
type registry struct {
	accept chan *stream

	mu       sync.Mutex
	err      error // set once the path ended: no stream is added from then on
	streams  map[*stream]struct{}
	openWait map[uint64]chan *stream // non-dialler: streams requested from the dialler
	openSeen map[uint64]struct{}     // dialler: requests already served
}

// maxOpenSeen bounds the request IDs a dialler remembers: retransmitted requests arrive within seconds.
const maxOpenSeen = 4096

func newRegistry(backlog int) registry {
	return registry{
		accept:   make(chan *stream, backlog),
		streams:  make(map[*stream]struct{}),
		openWait: make(map[uint64]chan *stream),
		openSeen: make(map[uint64]struct{}),
	}
}

// add registers a new stream, unless the path has ended.
func (r *registry) add(s *stream) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.streams[s] = struct{}{}
	return nil
}

func (r *registry) remove(s *stream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.streams, s)
}

// failAll fails every stream, queued or not, with err; no stream is added afterwards.
func (r *registry) failAll(err error) {
	r.mu.Lock()
	r.err = err
	streams := make([]*stream, 0, len(r.streams))
	for s := range r.streams {
		streams = append(streams, s)
	}
	r.mu.Unlock()
	for _, s := range streams {
		s.fail(err)
	}
	for {
		select {
		case s := <-r.accept:
			s.fail(err)
		default:
			return
		}
	}
}

// deliver queues a peer-opened stream for AcceptStream, refusing it when the backlog is full.
func (p *Path) deliver(s *stream) {
	select {
	case p.reg.accept <- s:
	default:
		p.log.Warn("utp: accept backlog full, refusing a stream", "backlog", p.cfg.AcceptBacklog)
		s.fail(errors.New("utp: accept backlog full"))
	}
}

// AcceptStream returns the next stream the peer opened.
func (p *Path) AcceptStream(ctx context.Context) (net.Conn, error) {
	select {
	case s := <-p.reg.accept:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, p.Err()
	}
}

// waitOpen registers a request ID whose stream the dialler will open; the channel receives it.
func (r *registry) waitOpen(id uint64) (chan *stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	ch := make(chan *stream, 1)
	r.openWait[id] = ch
	return ch, nil
}

// stopWait forgets a request; a stream that arrived for it meanwhile is returned.
func (r *registry) stopWait(id uint64, ch chan *stream) *stream {
	r.mu.Lock()
	delete(r.openWait, id)
	r.mu.Unlock()
	select {
	case s := <-ch:
		return s
	default:
		return nil
	}
}

// answer hands s to the request it was opened for, reporting whether one was still waiting. It sends under the
// lock (ch has room for one) so stopWait, which removes ch under the lock before draining it, never misses a stream.
func (r *registry) answer(id uint64, s *stream) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := r.openWait[id]
	delete(r.openWait, id)
	if ch != nil {
		ch <- s
	}
	return ch != nil
}

// firstRequest reports whether the dialler sees request id for the first time.
func (r *registry) firstRequest(id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.openSeen[id]; seen {
		return false
	}
	if len(r.openSeen) >= maxOpenSeen {
		clear(r.openSeen)
	}
	r.openSeen[id] = struct{}{}
	return true
}
