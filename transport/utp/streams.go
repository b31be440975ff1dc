package utp

import (
	"context"
	"fmt"
	"net"

	"github.com/p2phttp/p2phttp/transport/utp/internal/engine"
)

// OpenStream opens a new stream to the peer: a uTP connection of the path's engine (either side may open one; the
// peer receives it from AcceptStream). It returns once the peer's engine answered; without a ctx deadline it gives
// up after Config.OpenTimeout.
//
// The stream is a net.Conn with working deadlines and flow control (a writer blocks while the peer's receive window,
// Config.StreamWindow, is full). It also has CloseWrite() error, as *net.TCPConn does: the peer then reads io.EOF
// while this side can still read. Close returns at once and delivers what was written in the background (for up to
// Config.CloseTimeout), and Path.Close waits for that delivery before it ends the path. Writes after the peer closed
// the stream fail with an error wrapping ErrStreamClosed. When the path ends, reads and writes fail with an error
// wrapping ErrPathDead, ErrPathClosed or ErrTransportClosed; data that arrived in order before stays readable.
func (p *Path) OpenStream(ctx context.Context) (net.Conn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.OpenTimeout)
		defer cancel()
	}
	c, err := p.eng.Dial(ctx)
	if err != nil {
		if perr := p.Err(); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("utp: open stream to %v: %w", p.RemoteAddr(), err)
	}
	return c, nil
}

// AcceptStream returns the next stream the peer opened with OpenStream, in the order they reached us: on the side
// that is not Peer.Dialer, the first one is the dialler's first stream. Streams the peer opens while
// Config.AcceptBacklog of them wait are refused.
func (p *Path) AcceptStream(ctx context.Context) (net.Conn, error) {
	c, err := p.eng.Accept(ctx)
	if err != nil {
		if perr := p.Err(); perr != nil {
			return nil, perr
		}
		return nil, err
	}
	return c, nil
}

// engineConfig is the configuration of a path's engine.
func (p *Path) engineConfig() engine.Config {
	return engine.Config{
		MaxWindow:     p.cfg.MaxWindow,
		ReceiveWindow: p.cfg.StreamWindow,
		AcceptBacklog: p.cfg.AcceptBacklog,
		CloseTimeout:  p.cfg.CloseTimeout,
		RTTHint:       p.RTT,
		NewController: controllers[p.cfg.CongestionControl],
		LocalAddr:     p.t.local,
		RemoteAddr:    pathAddr{p},
		Logger:        p.log,
	}
}

// drain waits (up to Config.CloseTimeout) until every stream closed for writing has had its data acknowledged.
func (p *Path) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CloseTimeout)
	defer cancel()
	if err := p.eng.WaitClosed(ctx); err != nil {
		p.log.Debug("utp: closing the path before closed streams delivered everything", "err", err)
	}
}

// pathAddr is a stream's RemoteAddr: the path's remote address at the time it is asked (the route may change).
type pathAddr struct{ p *Path }

func (a pathAddr) Network() string { return "udp" }
func (a pathAddr) String() string  { return a.p.RemoteAddr().String() }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
