package symsock

// Default limits. Each one is an Option; a value <= 0 given to an Option keeps the default, except
// WithMaxBodyBytes where 0 means unlimited.
const (
	DefaultMaxStartLineBytes = 8 << 10   // request or status line, like Apache's LimitRequestLine
	DefaultMaxHeaderBytes    = 64 << 10  // header (or trailer) section without the start line
	DefaultMaxHeaderCount    = 128       // header (or trailer) fields per section
	DefaultMaxChunkLineBytes = 4 << 10   // chunk size line with its extensions
	DefaultDiscardLimit      = 256 << 10 // unread request body drained before the next request
	DefaultBufferSize        = 16 << 10  // initial input buffer; grows up to the header limits when needed
)

// Option configures a Socket.
type Option func(*config)

type config struct {
	maxStartLine int
	maxHeader    int
	maxHeaderN   int
	maxChunkLine int
	maxBody      int64
	discardLimit int64
	bufferSize   int
}

func defaultConfig() config {
	return config{
		maxStartLine: DefaultMaxStartLineBytes,
		maxHeader:    DefaultMaxHeaderBytes,
		maxHeaderN:   DefaultMaxHeaderCount,
		maxChunkLine: DefaultMaxChunkLineBytes,
		discardLimit: DefaultDiscardLimit,
		bufferSize:   DefaultBufferSize,
	}
}

// WithMaxStartLineBytes limits the request line or status line (without its line ending). A longer request line
// gets a 414 reply and ErrBufferExhausted.
func WithMaxStartLineBytes(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxStartLine = n
		}
	}
}

// WithMaxHeaderBytes limits the size of a header section (and of a trailer section), line endings included, start
// line excluded. A larger section gets a 431 reply and ErrBufferExhausted.
func WithMaxHeaderBytes(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxHeader = n
		}
	}
}

// WithMaxHeaderCount limits the number of fields in a header (or trailer) section. More fields get a 431 reply and
// ErrBufferExhausted.
func WithMaxHeaderCount(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxHeaderN = n
		}
	}
}

// WithMaxChunkLineBytes limits a chunk-size line, extensions included. A longer one gets a 400 reply and
// ErrBufferExhausted.
func WithMaxChunkLineBytes(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxChunkLine = n
		}
	}
}

// WithMaxBodyBytes limits the body of every received message; 0 (the default) means unlimited. A larger body is
// ErrBodyTooLarge; a server replies 413 (when it has not started its response) and closes the connection.
func WithMaxBodyBytes(n int64) Option {
	return func(c *config) {
		if n >= 0 {
			c.maxBody = n
		}
	}
}

// WithDiscardLimit sets how many bytes of an unread request body a server drains before reading the next request
// when it answered early. A larger rest closes the connection (a Content-Length body over the limit makes the
// response itself carry "Connection: close"). 0 never drains: answering before the body is read always closes.
func WithDiscardLimit(n int64) Option {
	return func(c *config) {
		if n >= 0 {
			c.discardLimit = n
		}
	}
}

// WithBufferSize sets the initial size of the input buffer (default 16 KiB). Large bodies bypass it: ReadSome
// reads them straight into the spare capacity of the message's Body.
func WithBufferSize(n int) Option {
	return func(c *config) {
		if n >= 512 {
			c.bufferSize = n
		}
	}
}
