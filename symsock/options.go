package symsock

import "net"

// Default limits of a Socket: what a zero field of Config means.
const (
	DefaultMaxStartLineBytes = 8 << 10   // request or status line, like Apache's LimitRequestLine
	DefaultMaxHeaderBytes    = 64 << 10  // header (or trailer) section without the start line
	DefaultMaxHeaderCount    = 128       // header (or trailer) fields per section
	DefaultMaxChunkLineBytes = 4 << 10   // chunk size line with its extensions
	DefaultDiscardLimit      = 256 << 10 // unread request body drained before the next request
	DefaultBufferSize        = 16 << 10  // initial input buffer; grows up to the header limits when needed
)

// Config holds the limits of a Socket. The zero value of each field means its default (the Default constants);
// New(conn) is (&Config{}).New(conn). Exceeding a limit is a clear error (and, on a server, a canned 4xx reply),
// never an unbounded allocation.
type Config struct {
	// MaxStartLineBytes limits the request line or status line (without its line ending). A longer request line
	// gets a 414 reply and ErrBufferExhausted.
	MaxStartLineBytes int
	// MaxHeaderBytes limits the size of a header section (and of a trailer section), line endings included, start
	// line excluded. A larger section gets a 431 reply and ErrBufferExhausted.
	MaxHeaderBytes int
	// MaxHeaderCount limits the number of fields in a header (or trailer) section. More fields get a 431 reply and
	// ErrBufferExhausted.
	MaxHeaderCount int
	// MaxChunkLineBytes limits a chunk-size line, extensions included. A longer one gets a 400 reply and
	// ErrBufferExhausted.
	MaxChunkLineBytes int
	// MaxBodyBytes limits the body of every received message; 0 means unlimited. A larger body is ErrBodyTooLarge;
	// a server replies 413 (when it has not started its response) and closes the connection.
	MaxBodyBytes int64
	// DiscardLimit is how many bytes of an unread request body a server drains before reading the next request
	// when it answered early. A larger rest closes the connection (a Content-Length body over the limit makes the
	// response itself carry "Connection: close"). Negative never drains: answering before the body is read
	// always closes.
	DiscardLimit int64
	// BufferSize is the initial size of the input buffer (at least 512). Large bodies bypass it: ReadSome reads
	// them straight into the spare capacity of the message's Body.
	BufferSize int
}

// New returns a Socket over conn with an undecided role and the limits of c (a nil c means the defaults). The
// Socket owns conn: Close closes it.
func (c *Config) New(conn net.Conn) *Socket {
	s := &Socket{conn: conn, cfg: c.resolve(), keepAlive: true, minor: 1}
	return s
}

// config is a Config with the defaults filled in.
type config struct {
	maxStartLine int
	maxHeader    int
	maxHeaderN   int
	maxChunkLine int
	maxBody      int64
	discardLimit int64 // 0: never drain
	bufferSize   int
}

func (c *Config) resolve() config {
	var z Config
	if c == nil {
		c = &z
	}
	r := config{
		maxStartLine: or(c.MaxStartLineBytes, DefaultMaxStartLineBytes),
		maxHeader:    or(c.MaxHeaderBytes, DefaultMaxHeaderBytes),
		maxHeaderN:   or(c.MaxHeaderCount, DefaultMaxHeaderCount),
		maxChunkLine: or(c.MaxChunkLineBytes, DefaultMaxChunkLineBytes),
		maxBody:      max(c.MaxBodyBytes, 0),
		discardLimit: or(c.DiscardLimit, DefaultDiscardLimit),
		bufferSize:   max(or(c.BufferSize, DefaultBufferSize), 512),
	}
	if c.DiscardLimit < 0 {
		r.discardLimit = 0
	}
	return r
}

// or returns v, or def when v is not positive.
func or[T int | int64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
