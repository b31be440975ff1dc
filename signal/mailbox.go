package signal

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// closeTimeout bounds telling the server that a meeting is over, which is done even after the caller's context
// ended.
const closeTimeout = 5 * time.Second

// mailbox is one side of one meeting on the server: messages go out numbered from 0, and come in strictly in order;
// anything the server returns twice, or out of order, is dropped.
type mailbox struct {
	c      *Client
	id     string // meeting ID
	peerID string
	sent   int            // next seq to send
	next   int            // next seq to deliver
	queued map[int][]byte // received ahead of next
}

func newMailbox(c *Client, id, peerID string) *mailbox {
	return &mailbox{c: c, id: id, peerID: peerID, queued: map[int][]byte{}}
}

// send appends body to the other side's inbox.
func (m *mailbox) send(ctx context.Context, body []byte) error {
	if len(body) > MaxMessageBytes {
		return fmt.Errorf("signal: a meeting message of %d bytes exceeds %d", len(body), MaxMessageBytes)
	}
	a, err := m.c.call(ctx, ExpandPath(SendPath, m.id), SendRequest{PeerID: m.peerID, Seq: m.sent, Body: body})
	if err != nil {
		return err
	}
	switch a.status {
	case http.StatusOK:
		m.sent++
		return nil
	case http.StatusNotFound, http.StatusGone:
		return fmt.Errorf("%w (%s)", ErrPeerLeft, errorMessage(a.body))
	default:
		return refusal(a)
	}
}

// recv returns the other side's next message, long-polling until it comes, the other side leaves (ErrPeerLeft) or
// ctx ends.
func (m *mailbox) recv(ctx context.Context) ([]byte, error) {
	for {
		if b, ok := m.queued[m.next]; ok {
			delete(m.queued, m.next)
			m.next++
			return b, nil
		}
		a, err := m.c.call(ctx, ExpandPath(RecvPath, m.id), RecvRequest{PeerID: m.peerID, After: m.next})
		if err != nil {
			return nil, err
		}
		switch a.status {
		case http.StatusOK:
			var r RecvResponse
			if err := json.Unmarshal(a.body, &r); err != nil {
				return nil, fmt.Errorf("%w: the server's reply: %s", ErrBadMessage, jsonErrorText(err))
			}
			for _, msg := range r.Messages {
				// Only what is still to come, and only once: a replayed or stale message is dropped here.
				if msg.Seq >= m.next && msg.Seq < m.next+maxQueued && len(msg.Body) <= MaxMessageBytes {
					if _, dup := m.queued[msg.Seq]; !dup {
						m.queued[msg.Seq] = msg.Body
					}
				}
			}
		case http.StatusAccepted:
		case http.StatusNotFound, http.StatusGone:
			return nil, fmt.Errorf("%w (%s)", ErrPeerLeft, errorMessage(a.body))
		default:
			return nil, refusal(a)
		}
	}
}

// maxQueued bounds how far ahead of the next message the mailbox keeps what the server sent.
const maxQueued = 16

// close tells the server the meeting is over, whatever ctx says; errors are only logged: the meeting expires anyway.
func (m *mailbox) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if _, err := m.c.post(ctx, ExpandPath(ClosePath, m.id), CloseRequest{PeerID: m.peerID}); err != nil {
		m.c.log.Debug("signal: closing the meeting", "meeting", m.id, "err", err)
	}
}
