package symsock

import (
	"errors"
	"fmt"
	"net"
)

// Errors returned by Socket operations; match them with errors.Is. Transport errors from the net.Conn pass through
// unchanged, an EOF inside a message is io.ErrUnexpectedEOF, and a call unblocked by Close returns an error that
// wraps net.ErrClosed.
var (
	// ErrOutOfOrder: the operation is not valid in the socket's current read or write state (or another
	// operation of the same direction is already running).
	ErrOutOfOrder = errors.New("symsock: operation out of order")
	// ErrNativeStreamUnsupported: a chunked (streamed) message was requested on an HTTP/1.0 exchange; send the
	// whole message with WriteResponse or WriteRequest instead.
	ErrNativeStreamUnsupported = errors.New("symsock: native stream unsupported (HTTP/1.0 peer)")
	// ErrParsing: the peer sent an invalid message. The error wraps a detail saying what was wrong and where.
	ErrParsing = errors.New("symsock: parsing error")
	// ErrBufferExhausted: a start line, header section, chunk line or trailer section exceeded its limit.
	ErrBufferExhausted = errors.New("symsock: buffer exhausted")
	// ErrWrongDirection: the operation belongs to the other role (client vs server), or the message type does
	// not match the role.
	ErrWrongDirection = errors.New("symsock: wrong direction")
	// ErrBodyTooLarge: a received body exceeded Config.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("symsock: body too large")
	// ErrUnreadBody: the server answered before reading the whole request body and the rest was larger than the
	// discard limit (Config.DiscardLimit), so the connection was closed instead of being drained.
	ErrUnreadBody = errors.New("symsock: unread request body exceeds the discard limit")
	// ErrInvalidMessage: a message given to a write operation cannot be sent as is (invalid method, target,
	// status or header, a Content-Length that disagrees with the body, a body where none is allowed). Nothing
	// is written and no state changes.
	ErrInvalidMessage = errors.New("symsock: invalid message")
	// ErrProtocolSwitched: the connection stopped carrying HTTP (a 101 Switching Protocols or a 2xx answer to
	// CONNECT was written or read); take it over with Hijack.
	ErrProtocolSwitched = errors.New("symsock: connection switched protocols; use Hijack")
	// ErrHijacked: the connection was taken over with Hijack; the Socket can do nothing more with it.
	ErrHijacked = errors.New("symsock: connection hijacked")
)

// errNoHalfClose: CloseWrite on a hijacked connection whose transport has no half-close.
var errNoHalfClose = errors.New("symsock: the connection cannot close only its write side")

// protocolError is a parsing failure: kind is ErrParsing, ErrBufferExhausted or ErrBodyTooLarge; reply is the canned
// response a server sends before closing.
type protocolError struct {
	kind   error
	detail string
	reply  []byte
}

func (e *protocolError) Error() string { return e.kind.Error() + ": " + e.detail }
func (e *protocolError) Unwrap() error { return e.kind }

func parseErr(reply []byte, format string, args ...any) *protocolError {
	return &protocolError{kind: ErrParsing, detail: fmt.Sprintf(format, args...), reply: reply}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...))
}

// errClosed is returned by operations started after the transport was closed.
var errClosed = fmt.Errorf("symsock: connection closed: %w", net.ErrClosed)

// closedError wraps a transport error caused by Close so that it matches net.ErrClosed.
func closedError(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", net.ErrClosed, err)
}

// Canned replies a server sends before closing on a malformed request (RFC 9112 section 2.2 and 9110 section 15).
var (
	replyInvalidData     = cannedReply("400 Bad Request", "Invalid data\n")
	replyHostMissing     = cannedReply("400 Bad Request", "Host missing\n")
	replyInvalidHost     = cannedReply("400 Bad Request", "Invalid Host\n")
	replyInvalidLength   = cannedReply("400 Bad Request", "Invalid content-length\n")
	replyInvalidTE       = cannedReply("400 Bad Request", "Invalid transfer-encoding\n")
	replyChunkSize       = cannedReply("400 Bad Request", "Can't process chunk size\n")
	replyChunkLine       = cannedReply("400 Bad Request", "Chunk line too long\n")
	replyHeaderTooLarge  = cannedReply("431 Request Header Fields Too Large", "Header section too large\n")
	replyRequestLineLong = cannedReply("414 URI Too Long", "Request line too long\n")
	replyBodyTooLarge    = cannedReply("413 Content Too Large", "Body too large\n")
)

func cannedReply(status, text string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, len(text), text)
}
