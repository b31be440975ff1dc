package symhttp

import "github.com/p2phttp/p2phttp/internal/wiretest"

// The raw-bytes tools shared with symsock's tests.
const testTimeout = wiretest.Timeout

var (
	tcpPair       = wiretest.Pair
	send          = wiretest.Send
	expectWire    = wiretest.ExpectWire
	expectSilence = wiretest.ExpectSilence
)

const r0 = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
