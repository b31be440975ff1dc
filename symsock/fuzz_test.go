package symsock

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fuzzConfig keeps limits small so the fuzzer reaches them.
var fuzzConfig = Config{MaxStartLineBytes: 200, MaxHeaderBytes: 400, MaxHeaderCount: 8, MaxChunkLineBytes: 40,
	MaxBodyBytes: 1000, BufferSize: 512}

// knownError reports whether err is one the socket may return for peer input read from a memConn.
func knownError(err error) bool {
	for _, target := range []error{ErrParsing, ErrBufferExhausted, ErrBodyTooLarge, ErrUnreadBody, ErrProtocolSwitched, io.EOF,
		io.ErrUnexpectedEOF, net.ErrClosed} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

var requestSeeds = []string{
	r0,
	"GET / HTTP/1.1\r\nhOsT: \t \t  localhosT:8080  \t\r\nX-ENEMY: y \t y,y\t\r\nx-moRe:\r\nx-mOre2:  \r\n\r\n",
	r0 + "POST /file_upload HTTP/1.1\r\nContent-length: 4\r\nhost: x\r\n\r\nping",
	"POST /1 HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\ne\r\n in\r\n\r\nchunks.\r\n0\r\nContent-MD5: \t 25b83662323c397c9944a8a7b3fef7ab \t\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;foo=bar\r\nWiki\r\n0\r\n\r\n",
	"GET /x HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + r0,
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nping",
	"GET / HTTP/1.0\r\nExpect: 100-continue\r\nconnection: upgrade\r\nupgrade: x/1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nping" + r0,
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n" + r0,
	"POST / HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: chunked\r\n\r\n4;q=\"a\\\"b\";t=v\r\nWiki\r\n0\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a%41:1\r\n\r\n",
	"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframe",
}

var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\n\r\nuntil close",
	"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nfoobar",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
	"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
	"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
}

func FuzzReadRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	for _, h := range hostileRequests {
		f.Add([]byte(h.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s := fuzzConfig.New(newMemConn(in))
		var req Request
		for n := 0; n < 10; n++ {
			err := s.ReadRequest(&req)
			// Each ReadSome consumes at least one byte or ends the message, so this loop is bounded by the input.
			for steps := 0; err == nil && s.ReadState() != ReadFinished; steps++ {
				require.LessOrEqual(t, steps, len(in)+2, "ReadSome made no progress on %q", in)
				err = s.ReadSome(&req)
			}
			if err != nil {
				require.True(t, knownError(err), "unexpected error %v", err)
				require.Equal(t, ReadEmpty, s.ReadState(), "read state after an error")
				return
			}
			require.NotEmpty(t, req.Method, "request without method from %q", in)
			require.NotEmpty(t, req.Target, "request without target from %q", in)
			for k := range req.Header {
				require.Equal(t, http.CanonicalHeaderKey(k), k, "header name")
				require.False(t, strings.ContainsAny(k, " \t:\r\n"), "header name %q", k)
			}
			if err := s.WriteResponse(&Response{Status: 200, Body: []byte("ok")}); err != nil {
				require.True(t, knownError(err), "WriteResponse: %v", err)
			}
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
	}
	for _, h := range hostileResponses {
		f.Add([]byte(h.in), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		s := fuzzConfig.New(newMemConn(in))
		method := "GET"
		if head {
			method = "HEAD"
		}
		for i := 0; i < 3; i++ {
			require.NoError(t, s.WriteRequest(&Request{Method: method, Target: "/", Header: http.Header{"Host": {"a"}}}), "WriteRequest")
		}
		var res Response
		for n := 0; n < 10; n++ {
			err := s.ReadResponse(&res)
			for steps := 0; err == nil && s.ReadState() != ReadEmpty; steps++ {
				require.LessOrEqual(t, steps, len(in)+2, "ReadSome made no progress on %q", in)
				err = s.ReadSome(&res)
			}
			if err != nil {
				require.True(t, knownError(err), "unexpected error %v", err)
				return
			}
			require.GreaterOrEqual(t, res.Status, 100, "status")
			require.LessOrEqual(t, res.Status, 999, "status")
			if head {
				require.Empty(t, res.Body, "body for HEAD")
			}
		}
	})
}
