package signalserver

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/p2phttp/p2phttp/signal"
)

// errAnswered aborts a store update whose outcome is a reply already
// prepared (a refusal that needs no write).
var errAnswered = errors.New("answered")

// nowMS is the time as the records keep it.
func nowMS() int64 { return time.Now().UnixMilli() }

// admitRoom checks that a client may add a room (a nameplate claim or a
// meeting): the per-client room rate, and room in the store.
func (s *Server) admitRoom(ctx context.Context, c client) (reply, string, bool) {
	if ok, wait := s.roomRate.allow(c.ip, time.Now()); !ok {
		return retryReply(http.StatusTooManyRequests, "too many new rooms from your address; slow down", wait), reasonRoomRate, false
	}
	n, err := s.store.Len(ctx)
	if err != nil {
		return storeErrorReply(err), reasonStore, false
	}
	if n >= s.cfg.MaxRecords {
		return retryReply(http.StatusServiceUnavailable, "too many rooms; retry later", 5*time.Second), reasonMaxRecords, false
	}
	return reply{}, "", true
}

// updateNameplate runs fn on nameplate np's record in one store update. fn
// gets the record and the time, and returns the answer (nil: none yet), the
// change to commit, and how many meetings it opened (counted once the
// update committed).
func (s *Server) updateNameplate(ctx context.Context, np string, fn func(n *nameplateRec, now int64) (*reply, Change, int, error)) (*reply, error) {
	var rp *reply
	var met int
	err := s.store.Update(ctx, nameplateKey(np), func(old []byte) (Change, error) {
		n, err := decodeNameplate(old)
		if err != nil {
			return Change{}, err
		}
		var ch Change
		rp, ch, met, err = fn(n, nowMS())
		return ch, err
	})
	if err == nil {
		s.metrics.meets.Add(float64(met))
	}
	return rp, err
}

// answer returns a pointer to a copy of rp.
func answer(rp reply) *reply { return &rp }

// host serves HostPath: claim the nameplate, hand over pending meetings, or
// park until a guest comes.
func (s *Server) host(rq *request) {
	var req signal.HostRequest
	if !s.decode(rq, &req, &req.PeerID, &req.Version) {
		return
	}
	np, id := rq.arg, req.PeerID
	ctx, cancel := s.storeCtx()
	defer cancel()

	// Peek first: a new claim must pass the room limits, a re-poll not.
	var claimed bool
	if _, err := s.updateNameplate(ctx, np, func(n *nameplateRec, now int64) (*reply, Change, int, error) {
		n.normalize(now, &s.cfg)
		claimed = n.Host == id
		return nil, Change{}, 0, nil
	}); err != nil {
		s.storeFailed(rq.w, err)
		return
	}
	if claimed {
		if rp, ok := s.limitPeer(nameplateKey(np), id); !ok {
			s.refuse(rq.w, reasonRateLimited, rp)
			return
		}
	} else {
		if rp, ok := s.limitClientRate(rq.client); !ok {
			s.refuse(rq.w, reasonRateLimited, rp)
			return
		}
		if rp, reason, ok := s.admitRoom(ctx, rq.client); !ok {
			s.refuse(rq.w, reason, rp)
			return
		}
	}
	if rp, reason, ok := s.acquire(rq, !claimed); !ok {
		s.refuse(rq.w, reason, rp)
		return
	}
	hp := &hostPoll{s: s, np: np, id: id, relay: s.relayInfo(id)}
	pp := s.newParkedPoll(rq, nameplateKey(np), hp)
	var newClaim bool
	rp, err := s.updateNameplate(ctx, np, func(n *nameplateRec, now int64) (*reply, Change, int, error) {
		newClaim = false
		n.normalize(now, &s.cfg)
		switch {
		case n.Ended[id] != 0:
			return answer(errorReply(http.StatusGone, signal.MsgClaimEnded)), Change{}, 0, nil
		case n.Host != "" && n.Host != id:
			return answer(errorReply(http.StatusConflict, signal.MsgNameplateInUse)), Change{}, 0, nil
		}
		var also []Put
		if n.Host == "" {
			n.Host, newClaim = id, true
			also = n.matchWaiting(np, now, &s.cfg)
		}
		if len(n.Pending) > 0 {
			rp := hp.meetings(n.Pending)
			n.Pending, n.HostPoll, n.SeenUntil = nil, "", now+s.cfg.Grace.Milliseconds()
			return rp, n.change(np, &s.cfg, len(also) > 0, also...), len(also), nil
		}
		// Wake only whom this concerns: the guests just met, or an older
		// poll of this host, which this one replaces.
		superseded := n.HostPoll != ""
		n.HostPoll, n.PollUntil = pp.id, now+s.cfg.PollWait.Milliseconds()+pollSlackMS
		return nil, n.change(np, &s.cfg, len(also) > 0 || superseded, also...), len(also), nil
	})
	if err == nil && newClaim {
		s.metrics.claims.Inc()
	}
	s.settle(pp, rp, err)
}

// pollSlackMS is added to a parked poll's deadline in the records, so that
// it still counts as present while its server answers it.
const pollSlackMS = 2000

// matchWaiting opens a meeting with every guest waiting at the nameplate,
// which must have a host; it returns the meetings' records.
func (n *nameplateRec) matchWaiting(np string, now int64, c *Config) []Put {
	var puts []Put
	for _, gid := range sortedKeys(n.Guests) {
		if g := n.Guests[gid]; g.Meeting == "" {
			puts = append(puts, n.meet(np, gid, g, now, c))
		}
	}
	return puts
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// hostPoll is a parked HostPath poll.
type hostPoll struct {
	s      *Server
	np, id string
	relay  *signal.RelayInfo // fresh credentials for this poll's answer; nil: no relay
}

// meetings is the 200 answer handing the host the meetings ids.
func (h *hostPoll) meetings(ids []string) *reply {
	return answer(okReply(signal.HostResponse{Meetings: ids, Relay: h.relay}))
}

// waiting is the host's 202.
func (h *hostPoll) waiting() *reply {
	if h.relay == nil {
		return &waitingReply
	}
	rp := okReply(signal.WaitingResponse{Status: signal.StatusWaiting, Relay: h.relay})
	rp.status = http.StatusAccepted
	return &rp
}

func (h *hostPoll) check(ctx context.Context, pollID string, final, hungUp bool) (*reply, int64, error) {
	s := h.s
	rp, err := s.updateNameplate(ctx, h.np, func(n *nameplateRec, now int64) (*reply, Change, int, error) {
		if n.Host == h.id && n.HostPoll == pollID {
			// Still ours: extend the presence that normalize checks while
			// this server answers.
			n.PollUntil = max(n.PollUntil, now+1)
		}
		n.normalize(now, &s.cfg)
		var rp *reply
		switch {
		case n.Host == "" && n.Ended[h.id] == 0 && !hungUp:
			// The record is gone (the store lost it: a Redis restart) while
			// the host waits here: claim it again.
			n.Host, n.HostPoll, n.PollUntil = h.id, pollID, now+s.cfg.PollWait.Milliseconds()+pollSlackMS
			also := n.matchWaiting(h.np, now, &s.cfg)
			return nil, n.change(h.np, &s.cfg, len(also) > 0, also...), len(also), nil
		case n.Host != h.id:
			return answer(errorReply(http.StatusGone, signal.MsgClaimEnded)), Change{}, 0, nil
		case n.HostPoll != pollID:
			return h.waiting(), Change{}, 0, nil // another poll of the host's took over
		case hungUp:
			// The host's connection closed while it waited: it is gone at
			// once, and its nameplate free.
			n.endClaim(now, &s.cfg)
			return nil, n.change(h.np, &s.cfg, true), 0, nil
		case len(n.Pending) > 0:
			rp = h.meetings(n.Pending)
		case !final:
			return nil, Change{}, 0, nil
		default:
			rp = h.waiting()
		}
		n.Pending, n.HostPoll, n.SeenUntil = nil, "", now+s.cfg.Grace.Milliseconds()
		return rp, n.change(h.np, &s.cfg, false), 0, nil
	})
	return rp, 0, err
}

// release serves ReleasePath.
func (s *Server) release(rq *request) {
	var req signal.ReleaseRequest
	if !s.decode(rq, &req, &req.PeerID, nil) {
		return
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	_, err := s.updateNameplate(ctx, rq.arg, func(n *nameplateRec, now int64) (*reply, Change, int, error) {
		if n.Host != req.PeerID {
			return nil, Change{}, 0, nil // not (or no longer) the holder: nothing to do
		}
		n.endClaim(now, &s.cfg)
		return nil, n.change(rq.arg, &s.cfg, true), 0, nil
	})
	if err != nil {
		s.storeFailed(rq.w, err)
		return
	}
	writeReply(rq.w, emptyReply)
}

// guest serves GuestPath: meet the host, or park until one comes.
func (s *Server) guest(rq *request) {
	var req signal.GuestRequest
	if !s.decode(rq, &req, &req.PeerID, &req.Version) {
		return
	}
	np, id := rq.arg, req.PeerID
	ctx, cancel := s.storeCtx()
	defer cancel()
	if rp, reason, ok := s.acquire(rq, true); !ok {
		s.refuse(rq.w, reason, rp)
		return
	}
	gp := &guestPoll{s: s, np: np, id: id, relay: s.relayInfo(id)}
	pp := s.newParkedPoll(rq, nameplateKey(np), gp)
	needRoom := true
	update := func(n *nameplateRec, now int64) (*reply, Change, int, error) {
		n.normalize(now, &s.cfg)
		g := n.Guests[id]
		if g == nil {
			if len(n.Guests) >= s.cfg.MaxGuestsPerNameplate {
				return answer(retryReply(http.StatusConflict, signal.MsgNameplateFull, s.cfg.Grace)), Change{}, 0, errAnswered
			}
			if needRoom {
				return nil, Change{}, 0, errNeedRoom
			}
			g = &guestRec{}
			if n.Guests == nil {
				n.Guests = make(map[string]*guestRec)
			}
			n.Guests[id] = g
		}
		if g.Meeting != "" {
			return gp.met(g.Meeting), Change{}, 0, nil
		}
		if n.hostPresent(now) {
			put := n.meet(np, id, g, now, &s.cfg)
			return gp.met(g.Meeting), n.change(np, &s.cfg, true, put), 1, nil
		}
		superseded := g.Poll != "" // an older poll of this guest: it answers 202
		g.Poll, g.Until = pp.id, now+s.cfg.PollWait.Milliseconds()+pollSlackMS
		return nil, n.change(np, &s.cfg, superseded), 0, nil
	}
	rp, err := s.updateNameplate(ctx, np, update)
	if errors.Is(err, errNeedRoom) {
		// A new guest adds a meeting (and maybe the nameplate's record).
		if r, reason, ok := s.admitRoom(ctx, rq.client); !ok {
			pp.finish()
			s.refuse(rq.w, reason, r)
			return
		}
		needRoom = false
		rp, err = s.updateNameplate(ctx, np, update)
	}
	if errors.Is(err, errAnswered) {
		err = nil
		s.metrics.refusals.WithLabelValues(reasonNameplateFull).Inc()
	}
	s.settle(pp, rp, err)
}

var errNeedRoom = errors.New("need room")

// guestPoll is a parked GuestPath poll.
type guestPoll struct {
	s      *Server
	np, id string
	relay  *signal.RelayInfo // credentials for this poll's answer; nil: no relay
}

// met is the 200 answer putting the guest in meeting id.
func (gp *guestPoll) met(id string) *reply {
	return answer(okReply(signal.GuestResponse{Meeting: id, Relay: gp.s.withRenewal(gp.relay, gp.id)}))
}

func (gp *guestPoll) check(ctx context.Context, pollID string, final, hungUp bool) (*reply, int64, error) {
	s := gp.s
	rp, err := s.updateNameplate(ctx, gp.np, func(n *nameplateRec, now int64) (*reply, Change, int, error) {
		g := n.Guests[gp.id]
		if g != nil && g.Poll == pollID {
			g.Until = max(g.Until, now+1) // present while this server answers
		}
		n.normalize(now, &s.cfg)
		if g = n.Guests[gp.id]; g == nil {
			if hungUp {
				return nil, Change{}, 0, nil
			}
			// The record is gone (a Redis restart): wait again.
			g = &guestRec{Poll: pollID, Until: now + s.cfg.PollWait.Milliseconds() + pollSlackMS}
			if n.Guests == nil {
				n.Guests = make(map[string]*guestRec)
			}
			n.Guests[gp.id] = g
		}
		switch {
		case g.Meeting != "":
			rp := gp.met(g.Meeting)
			if g.Poll != pollID {
				return rp, Change{}, 0, nil
			}
			g.Poll = ""
			return rp, n.change(gp.np, &s.cfg, false), 0, nil
		case g.Poll != pollID:
			return &waitingReply, Change{}, 0, nil // another poll of the guest's took over
		case hungUp:
			delete(n.Guests, gp.id) // gone before it met anyone
			return nil, n.change(gp.np, &s.cfg, false), 0, nil
		case n.hostPresent(now):
			put := n.meet(gp.np, gp.id, g, now, &s.cfg)
			g.Poll = ""
			return gp.met(g.Meeting), n.change(gp.np, &s.cfg, true, put), 1, nil
		case !final:
			return nil, Change{}, 0, nil
		}
		g.Poll, g.Until = "", now+s.cfg.Grace.Milliseconds()
		return &waitingReply, n.change(gp.np, &s.cfg, false), 0, nil
	})
	return rp, 0, err
}

// meetingUpdate loads the meeting of rq, checks that peerID is a member and
// runs fn on it; fn returns whether to write the record back. A reply set
// by fn, or the refusal, comes back as rp.
func (s *Server) meetingUpdate(ctx context.Context, id, peerID string, fn func(m *meetingRec, side int, now int64) (rp *reply, write bool)) (rp *reply, next int64, err error) {
	err = s.store.Update(ctx, meetingKey(id), func(old []byte) (Change, error) {
		rp, next = nil, 0
		m, err := decodeMeeting(old)
		if err != nil {
			return Change{}, err
		}
		if m == nil {
			r := errorReply(http.StatusNotFound, signal.MsgUnknownMeeting)
			rp = &r
			return Change{}, nil
		}
		side := m.side(peerID)
		if side < 0 {
			r := errorReply(http.StatusForbidden, signal.MsgNotMember)
			rp = &r
			return Change{}, nil
		}
		now := nowMS()
		if now >= m.Expires {
			r := errorReply(http.StatusGone, signal.MsgMeetingExpired)
			rp = &r
			return Change{}, nil
		}
		var write bool
		rp, write = fn(m, side, now)
		next = m.nextChange(side, now)
		if !write {
			return Change{}, nil
		}
		ch := m.change(id)
		if m.quiet {
			ch.Wake = nil
		}
		return ch, nil
	})
	return rp, next, err
}

// send serves SendPath.
func (s *Server) send(rq *request) {
	var req signal.SendRequest
	if !s.decode(rq, &req, &req.PeerID, nil) {
		return
	}
	if err := signal.ValidateMessage(req.Seq, req.Body, s.cfg.MaxMessages); err != nil {
		status := http.StatusBadRequest
		if req.Seq >= s.cfg.MaxMessages || len(req.Body) > signal.MaxMessageBytes {
			status = http.StatusRequestEntityTooLarge
		}
		s.refuse(rq.w, reasonBadRequest, errorReply(status, err.Error()[len("signal: "):]))
		return
	}
	if rp, ok := s.limitPeer(meetingKey(rq.arg), req.PeerID); !ok {
		s.refuse(rq.w, reasonRateLimited, rp)
		return
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	rp, _, err := s.meetingUpdate(ctx, rq.arg, req.PeerID, func(m *meetingRec, side int, now int64) (*reply, bool) {
		msgs := m.Msgs[side]
		switch {
		case m.left(1-side, now) || m.Closed[side]:
			r := errorReply(http.StatusGone, signal.MsgPeerLeft)
			return &r, false
		case req.Seq < len(msgs):
			if !bytes.Equal(msgs[req.Seq], req.Body) {
				r := errorReply(http.StatusConflict, "seq already used by another message")
				return &r, false
			}
			m.arrived(side)
			return &emptyReply, true // an idempotent retry
		case req.Seq > len(msgs):
			r := errorReply(http.StatusBadRequest, "seq gap: next seq is "+strconv.Itoa(len(msgs)))
			return &r, false
		}
		m.Msgs[side] = append(msgs, req.Body)
		m.arrived(side)
		s.metrics.messages.Inc()
		return &emptyReply, true
	})
	if err != nil {
		s.storeFailed(rq.w, err)
		return
	}
	s.strikeIfStranger(rq, rp)
	writeReply(rq.w, *rp)
}

// closeMeeting serves ClosePath. A closed meeting frees its guest's place
// at the nameplate (MaxGuestsPerNameplate) at once.
func (s *Server) closeMeeting(rq *request) {
	var req signal.CloseRequest
	if !s.decode(rq, &req, &req.PeerID, nil) {
		return
	}
	if rp, ok := s.limitPeer(meetingKey(rq.arg), req.PeerID); !ok {
		s.refuse(rq.w, reasonRateLimited, rp)
		return
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	var np, guest string
	rp, _, err := s.meetingUpdate(ctx, rq.arg, req.PeerID, func(m *meetingRec, side int, now int64) (*reply, bool) {
		np, guest = m.Nameplate, m.Peers[1]
		if m.Closed[side] {
			return &emptyReply, false
		}
		m.Closed[side] = true
		return &emptyReply, true
	})
	if err == nil && np != "" {
		err = s.freeGuest(ctx, np, guest, rq.arg)
	}
	if err != nil {
		s.storeFailed(rq.w, err)
		return
	}
	s.strikeIfStranger(rq, rp)
	if rp.status == http.StatusGone { // already expired: closed anyway
		rp = &emptyReply
	}
	writeReply(rq.w, *rp)
}

// freeGuest drops guest, whose meeting is closed, from nameplate np.
func (s *Server) freeGuest(ctx context.Context, np, guest, meeting string) error {
	_, err := s.updateNameplate(ctx, np, func(n *nameplateRec, now int64) (*reply, Change, int, error) {
		if g := n.Guests[guest]; g == nil || g.Meeting != meeting {
			return nil, Change{}, 0, nil
		}
		delete(n.Guests, guest)
		n.normalize(now, &s.cfg)
		return nil, n.change(np, &s.cfg, false), 0, nil
	})
	return err
}

// strikeIfStranger charges rq's client when rp says it named a meeting that
// does not exist or that it is not in: such requests are not held to a
// peer's rate but to its address's.
func (s *Server) strikeIfStranger(rq *request, rp *reply) {
	if rp != nil && (rp.status == http.StatusNotFound || rp.status == http.StatusForbidden) {
		s.strike(rq.client)
	}
}

// recv serves RecvPath: the other side's messages, or park until some come.
func (s *Server) recv(rq *request) {
	var req signal.RecvRequest
	if !s.decode(rq, &req, &req.PeerID, nil) {
		return
	}
	if req.After < 0 {
		s.refuse(rq.w, reasonBadRequest, errorReply(http.StatusBadRequest, "negative after"))
		return
	}
	if rp, ok := s.limitPeer(meetingKey(rq.arg), req.PeerID); !ok {
		s.refuse(rq.w, reasonRateLimited, rp)
		return
	}
	// One recv of a side is parked at a time (a new one replaces it), so a
	// member's recvs need no per-client cap; others are refused at once.
	if rp, reason, ok := s.acquire(rq, false); !ok {
		s.refuse(rq.w, reason, rp)
		return
	}
	rp0 := &recvPoll{s: s, meeting: rq.arg, id: req.PeerID, after: req.After}
	pp := s.newParkedPoll(rq, meetingKey(rq.arg), rp0)
	ctx, cancel := s.storeCtx()
	defer cancel()
	rp, next, err := s.meetingUpdate(ctx, rq.arg, req.PeerID, func(m *meetingRec, side int, now int64) (*reply, bool) {
		m.arrived(side)
		if r := rp0.ready(m, side, now); r != nil {
			return r, true
		}
		// Only an older recv of this side, which this one replaces, needs
		// waking: parked polls that wake for nothing keep a grown stack.
		m.quiet = m.Polls[side] == ""
		m.Polls[side] = pp.id
		return nil, true
	})
	pp.next = next
	s.strikeIfStranger(rq, rp)
	s.settle(pp, rp, err)
}

// recvPoll is a parked RecvPath poll.
type recvPoll struct {
	s           *Server
	meeting, id string
	after       int
}

// ready is the answer to the recv now, or nil to wait.
func (p *recvPoll) ready(m *meetingRec, side int, now int64) *reply {
	other := 1 - side
	if msgs := m.Msgs[other]; p.after < len(msgs) {
		res := signal.RecvResponse{Messages: make([]signal.Message, 0, len(msgs)-p.after)}
		for i := p.after; i < len(msgs); i++ {
			res.Messages = append(res.Messages, signal.Message{Seq: i, Body: msgs[i]})
		}
		r := okReply(res)
		return &r
	}
	if m.left(other, now) {
		r := errorReply(http.StatusGone, signal.MsgPeerLeft)
		return &r
	}
	return nil
}

func (p *recvPoll) check(ctx context.Context, pollID string, final, hungUp bool) (*reply, int64, error) {
	rp, next, err := p.s.meetingUpdate(ctx, p.meeting, p.id, func(m *meetingRec, side int, now int64) (*reply, bool) {
		mine := m.Polls[side] == pollID
		switch {
		case hungUp:
			if !mine {
				return nil, false
			}
			// Its client hung up: it has left unless it comes back within
			// the grace.
			m.Polls[side], m.Gone[side] = "", now+p.s.cfg.Grace.Milliseconds()
			return nil, true
		case !mine:
			return &waitingReply, false // another recv of this side took over
		}
		if r := p.ready(m, side, now); r != nil {
			m.Polls[side] = ""
			return r, true
		}
		if !final {
			return nil, false
		}
		m.Polls[side] = ""
		return &waitingReply, true
	})
	if err == nil && rp != nil && rp.status == http.StatusNotFound {
		// The meeting vanished while this poll waited: the store lost it.
		r := errorReply(http.StatusGone, signal.MsgMeetingExpired)
		rp = &r
	}
	return rp, next, err
}
