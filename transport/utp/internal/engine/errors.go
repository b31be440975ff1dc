package engine

import (
	"errors"
	"fmt"
	"net"
)

// Errors the engine returns; errors.Is matches them (through any wrapping).
var (
	// ErrReset: the peer reset the connection, or refused it.
	ErrReset = errors.New("utp: connection reset by peer")
	// ErrClosed: the connection or endpoint was closed locally. It wraps
	// net.ErrClosed.
	ErrClosed = fmt.Errorf("utp: %w", net.ErrClosed)
	// ErrWriteClosed: Write after CloseWrite or Close.
	ErrWriteClosed = errors.New("utp: write after close")
	// ErrPathFailed wraps the error given to Endpoint.Fail.
	ErrPathFailed = errors.New("utp: path failed")
	// ErrCloseTimeout: a closing connection's last data or FIN went
	// unacknowledged for Config.CloseTimeout.
	ErrCloseTimeout = errors.New("utp: close timed out")
	// ErrTooManyConns: no connection ID is free.
	ErrTooManyConns = errors.New("utp: no free connection ID")
)

// Addr is the default address of a connection: the engine knows no network
// addresses, only the connection's receive ID.
type Addr struct {
	ConnID uint16 // the ID this side of the connection receives (Local) or sends (remote) on
	Local  bool   // whether this is the connection's own end
}

// Network returns "utp".
func (a Addr) Network() string { return "utp" }

func (a Addr) String() string {
	side := "remote"
	if a.Local {
		side = "local"
	}
	return fmt.Sprintf("utp-conn-%d-%s", a.ConnID, side)
}
