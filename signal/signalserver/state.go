package signalserver

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/p2phttp/p2phttp/signal"
)

// The records the server keeps in its Store, JSON-encoded. Times are Unix
// milliseconds, so that every server sharing a store reads them alike (their
// clocks are assumed in step to well under a second).

// Store keys.
func nameplateKey(nameplate string) string { return "np:" + nameplate }
func meetingKey(id string) string          { return "m:" + id }

// nameplateRec is a nameplate: its host's claim, the guests that asked for it
// and the host peer IDs whose claims ended (a request with one of them gets
// 410, so a replayed host request cannot claim a nameplate back).
type nameplateRec struct {
	Host      string               `json:"host,omitempty"`       // peer ID of the claiming host
	HostPoll  string               `json:"host_poll,omitempty"`  // ID of its parked poll, "" between polls
	PollUntil int64                `json:"poll_until,omitempty"` // that poll's deadline
	SeenUntil int64                `json:"seen_until,omitempty"` // the host is present until then after a poll returned
	Pending   []string             `json:"pending,omitempty"`    // meetings not yet handed to the host, oldest first
	Guests    map[string]*guestRec `json:"guests,omitempty"`     // by guest peer ID
	Ended     map[string]int64     `json:"ended,omitempty"`      // host peer ID -> until when it is remembered
}

// guestRec is a guest of a nameplate: waiting for a host, or met.
type guestRec struct {
	Meeting string `json:"meeting,omitempty"` // "" while waiting
	Poll    string `json:"poll,omitempty"`    // its parked poll, "" between polls
	Until   int64  `json:"until"`             // dropped then: the end of its poll plus grace, or its meeting's expiry
}

// maxEnded bounds the ended host IDs one nameplate remembers.
const maxEnded = 32

func decodeNameplate(b []byte) (*nameplateRec, error) {
	n := new(nameplateRec)
	if b == nil {
		return n, nil
	}
	if err := json.Unmarshal(b, n); err != nil {
		return nil, fmt.Errorf("signalserver: corrupt nameplate record: %w", err)
	}
	return n, nil
}

// hostPresent reports whether the claiming host is present at now: one of
// its polls is parked, or one returned less than the grace ago.
func (n *nameplateRec) hostPresent(now int64) bool {
	return n.Host != "" && (n.HostPoll != "" && now < n.PollUntil || now < n.SeenUntil)
}

// normalize applies what time did to the record: guests whose time ran out
// leave, a host that is no longer present loses its claim.
func (n *nameplateRec) normalize(now int64, c *Config) {
	maps.DeleteFunc(n.Guests, func(_ string, g *guestRec) bool { return g.Until <= now })
	maps.DeleteFunc(n.Ended, func(_ string, until int64) bool { return until <= now })
	if n.Host != "" && !n.hostPresent(now) {
		n.endClaim(now, c)
	}
}

// endClaim drops the host's claim. Meetings not yet handed to it are left to
// expire: their guest hears "peer left" when the host does not show up.
func (n *nameplateRec) endClaim(now int64, c *Config) {
	if n.Ended == nil {
		n.Ended = make(map[string]int64)
	}
	for len(n.Ended) >= maxEnded { // forget the oldest
		var oldest string
		for id, until := range n.Ended {
			if oldest == "" || until < n.Ended[oldest] {
				oldest = id
			}
		}
		delete(n.Ended, oldest)
	}
	n.Ended[n.Host] = now + c.MeetingTTL.Milliseconds()
	n.Host, n.HostPoll, n.PollUntil, n.SeenUntil, n.Pending = "", "", 0, 0, nil
}

func (n *nameplateRec) empty() bool {
	return n.Host == "" && len(n.Guests) == 0 && len(n.Ended) == 0
}

// change is the Change that stores n (or deletes it when empty), waking the
// nameplate's pollers when wake.
func (n *nameplateRec) change(nameplate string, c *Config, wake bool, also ...Put) Change {
	ch := Change{Write: true, Also: also, TTL: c.MeetingTTL + c.PollWait + c.Grace}
	if !n.empty() {
		ch.Value = mustJSON(n)
	}
	if wake {
		ch.Wake = []string{nameplateKey(nameplate)}
	}
	return ch
}

// meet opens a meeting between the host and guest g (peer ID gid), queues it
// for the host and returns the meeting's record as a Put.
func (n *nameplateRec) meet(nameplate, gid string, g *guestRec, now int64, c *Config) Put {
	id := signal.NewMeetingID()
	m := &meetingRec{
		Nameplate: nameplate,
		Peers:     [2]string{n.Host, gid},
		Expires:   now + c.MeetingTTL.Milliseconds(),
	}
	// Each side must show up within a poll and a grace, or the other hears
	// that it left: a host that died between polls never fetches its
	// meetings, and its guests should not wait out the TTL.
	arrive := now + (c.PollWait + c.Grace).Milliseconds()
	m.Arrive = [2]int64{arrive, arrive}
	g.Meeting, g.Until = id, m.Expires
	n.Pending = append(n.Pending, id)
	return Put{Key: meetingKey(id), Value: mustJSON(m), TTL: meetingRecordTTL(c)}
}

// meetingRecordTTL keeps a meeting's record a little past its expiry, so
// late requests hear "meeting expired" rather than "unknown meeting".
func meetingRecordTTL(c *Config) time.Duration { return c.MeetingTTL + time.Minute }

// meetingRec is a meeting of a host (side 0) and a guest (side 1).
type meetingRec struct {
	Nameplate string      `json:"nameplate"`
	Peers     [2]string   `json:"peers"`
	Msgs      [2][][]byte `json:"msgs"`   // the messages each side sent, by seq
	Closed    [2]bool     `json:"closed"` // the side closed the meeting
	Gone      [2]int64    `json:"gone"`   // the side's parked poll hung up: it has left at this time unless it came back
	Arrive    [2]int64    `json:"arrive"` // the side has left at this time unless it made a request (0 once it did)
	Polls     [2]string   `json:"polls"`  // the side's parked recv poll
	Expires   int64       `json:"expires"`

	quiet bool // set by an update that needs to wake no one
}

func decodeMeeting(b []byte) (*meetingRec, error) {
	if b == nil {
		return nil, nil
	}
	m := new(meetingRec)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("signalserver: corrupt meeting record: %w", err)
	}
	return m, nil
}

// side returns peerID's side, or -1 when it is not a member.
func (m *meetingRec) side(peerID string) int {
	for i, p := range m.Peers {
		if p == peerID {
			return i
		}
	}
	return -1
}

// left reports whether side i has left at now.
func (m *meetingRec) left(i int, now int64) bool {
	return m.Closed[i] || m.Gone[i] != 0 && now >= m.Gone[i] || m.Arrive[i] != 0 && now >= m.Arrive[i]
}

// arrived records a request of side i: it is present.
func (m *meetingRec) arrived(i int) { m.Arrive[i], m.Gone[i] = 0, 0 }

// nextChange is the next time at which the record changes by itself as seen
// by side i's recv: the other side's leaving or the expiry. Zero: none.
func (m *meetingRec) nextChange(i int, now int64) int64 {
	o := 1 - i
	next := m.Expires
	for _, t := range []int64{m.Gone[o], m.Arrive[o]} {
		if t > now && t < next {
			next = t
		}
	}
	return next
}

// change stores m and wakes the meeting's pollers.
func (m *meetingRec) change(id string) Change {
	ttl := max(time.Until(time.UnixMilli(m.Expires))+time.Minute, time.Second)
	return Change{Write: true, Value: mustJSON(m), TTL: ttl, Wake: []string{meetingKey(id)}}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types, which always encode
	}
	return b
}
