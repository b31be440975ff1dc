package symsock

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// hostileRequests are malformed or ambiguous requests (RFC 9112, with the request smuggling shapes of sections 6.1
// and 6.3 and 11.2): each must fail with the given error, make the server send the given reply (none for an EOF)
// and close the connection.
var hostileRequests = []struct {
	name  string
	in    string
	err   error
	reply string // canned reply text; the status comes from replyStatus
	cfg   Config
}{
	// Content-Length and Transfer-Encoding shapes.
	{"CL conflicting fields", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nping!", ErrParsing, "Invalid content-length\n", Config{}},
	{"CL equal duplicate fields", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nping", ErrParsing, "Invalid content-length\n", Config{}},
	{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 5\r\n\r\nping!", ErrParsing, "Invalid content-length\n", Config{}},
	{"CL plus sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nping", ErrParsing, "Invalid content-length\n", Config{}},
	{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\nping", ErrParsing, "Invalid content-length\n", Config{}},
	{"CL inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4 4\r\n\r\nping", ErrParsing, "Invalid content-length\n", Config{}},
	{"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -4\r\n\r\nping", ErrParsing, "Invalid content-length\n", Config{}},
	{"CL int64 overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", ErrParsing, "Invalid content-length\n", Config{}},
	{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", ErrParsing, "Invalid content-length\n", Config{}},
	{"CL space before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 4\r\n\r\nping", ErrParsing, "Invalid data\n", Config{}},
	{"TE space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"TE unknown coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", ErrParsing, "Invalid transfer-encoding\n", Config{}},
	{"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 4\r\n\r\nping", ErrParsing, "Invalid transfer-encoding\n", Config{}},
	{"TE gzip before chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", ErrParsing, "Invalid transfer-encoding\n", Config{}},
	{"TE chunked twice in two fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ErrParsing, "Invalid transfer-encoding\n", Config{}},
	{"TE coding after chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n", ErrParsing, "Invalid transfer-encoding\n", Config{}},
	{"TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 4\r\n\r\nping", ErrParsing, "Invalid transfer-encoding\n", Config{}},
	{"TE with parameter", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n", ErrParsing, "Invalid transfer-encoding\n", Config{}},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", ErrParsing, "Invalid transfer-encoding\n", Config{}},
	{"TE obs-folded", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	// Chunk framing.
	{"chunk size not hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\ng\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"chunk size empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"chunk size leading space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 4\r\nWiki\r\n0\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"chunk size junk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4 x\r\nWiki\r\n0\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"chunk size negative", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-4\r\nWiki\r\n0\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"chunk line bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\nWiki\r\n0\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"chunk data too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWikipedia\r\n0\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"chunk size overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", ErrParsing, "Can't process chunk size\n", Config{}},
	{"chunk extension control byte", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;a=\x01\r\nWiki\r\n0\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"chunk line too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;" + strings.Repeat("x", 200) + "\r\nWiki\r\n0\r\n\r\n", ErrBufferExhausted, "Chunk line too long\n", Config{MaxChunkLineBytes: 100}},
	{"trailer bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"trailer obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n 2\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"trailer section too many fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", ErrBufferExhausted, "Header section too large\n", Config{MaxHeaderCount: 2}},
	// Field syntax.
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"bare CR as line end", "GET / HTTP/1.1\rHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"invalid name byte", "GET / HTTP/1.1\r\nHost: a\r\nX(Y): 1\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	// Request line.
	{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"method with invalid byte", "GE@T / HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"target with fragment", "GET /#x HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"target with tab", "GET /\t HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"version junk", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"HTTP/0.9 style", "GET /\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	// One empty line before the request line is ignored (RFC 9112 section 2.2; see TestOneEmptyLineBeforeRequest),
	// not two, and not a bare LF.
	{"two empty lines first", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"bare LF empty line first", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},

	// Line endings in the header block: CRLF only.
	{"request line bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"header line bare LF", "GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"final empty line bare LF", "GET / HTTP/1.1\r\nHost: a\r\n\n", ErrParsing, "Invalid data\n", Config{}},
	{"all bare LF", "GET / HTTP/1.1\nHost: a\n\n", ErrParsing, "Invalid data\n", Config{}},

	// Chunk extensions by the grammar: ;name[=token|quoted-string], no whitespace.
	{"chunk ext bare semicolon", chunked("4;\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext empty name", chunked("4;=x\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext space after size", chunked("4 ;a=b\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext tab after size", chunked("4\t\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext space after semicolon", chunked("4; a\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext space around equals", chunked("4;a = b\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext empty value", chunked("4;a=\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext value not a token", chunked("4;a=b/c\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext unterminated quote", chunked("4;a=\"bc\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext junk after quote", chunked("4;a=\"b\"c\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext non-ASCII name", chunked("4;\xe9=1\r\nWiki\r\n0\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},
	{"chunk ext on last chunk", chunked("4\r\nWiki\r\n0;;\r\n\r\n"), ErrParsing, "Invalid data\n", Config{}},

	// Request targets.
	{"fragment in target", "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"fragment only", "GET # HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"asterisk with POST", "POST * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},
	{"asterisk with lowercase options", "options * HTTP/1.1\r\nHost: a\r\n\r\n", ErrParsing, "Invalid data\n", Config{}},

	// Host syntax: exactly one field, host[:port] only.
	{"Host userinfo", "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host userinfo with password", "GET / HTTP/1.1\r\nHost: u:p@a:80\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host query", "GET / HTTP/1.1\r\nHost: a?b\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host inner space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host port not digits", "GET / HTTP/1.1\r\nHost: a:http\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host two colons", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host unclosed IPv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host IPv6 junk after bracket", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", ErrParsing, "Invalid Host\n", Config{}},
	{"Host twice in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", ErrParsing, "Host missing\n", Config{}},
	// Host.
	{"missing Host", "GET / HTTP/1.1\r\nX: 1\r\n\r\n", ErrParsing, "Host missing\n", Config{}},
	{"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", ErrParsing, "Host missing\n", Config{}},
	// Limits.
	{"start line too long", "GET /" + strings.Repeat("a", 300) + " HTTP/1.1\r\nHost: a\r\n\r\n", ErrBufferExhausted, "Request line too long\n", Config{MaxStartLineBytes: 256}},
	{"start line too long by default", "GET /" + strings.Repeat("a", DefaultMaxStartLineBytes) + " HTTP/1.1\r\nHost: a\r\n\r\n", ErrBufferExhausted, "Request line too long\n", Config{}},
	{"header section too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("b", 2000) + "\r\n\r\n", ErrBufferExhausted, "Header section too large\n", Config{MaxHeaderBytes: 1024}},
	{"header line without end", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("b", 2000), ErrBufferExhausted, "Header section too large\n", Config{MaxHeaderBytes: 1024}},
	{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: 1\r\n", 11) + "\r\n", ErrBufferExhausted, "Header section too large\n", Config{MaxHeaderCount: 10}},
	{"body too large by Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", ErrBodyTooLarge, "Body too large\n", Config{MaxBodyBytes: 10}},
	{"body too large chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n", ErrBodyTooLarge, "Body too large\n", Config{MaxBodyBytes: 10}},
	// The peer goes away inside a message: io.ErrUnexpectedEOF, nothing sent.
	{"EOF in request line", "GET / HT", io.ErrUnexpectedEOF, "", Config{}},
	{"EOF in headers", "GET / HTTP/1.1\r\nHost: a\r\n", io.ErrUnexpectedEOF, "", Config{}},
	{"EOF in Content-Length body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", io.ErrUnexpectedEOF, "", Config{}},
	{"EOF in chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi", io.ErrUnexpectedEOF, "", Config{}},
	{"EOF in chunk size line", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4", io.ErrUnexpectedEOF, "", Config{}},
	{"EOF in trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n", io.ErrUnexpectedEOF, "", Config{}},
}

func replyStatus(text string) string {
	switch text {
	case "Header section too large\n":
		return "431 Request Header Fields Too Large"
	case "Request line too long\n":
		return "414 URI Too Long"
	case "Body too large\n":
		return "413 Content Too Large"
	}
	return "400 Bad Request"
}

// chunked is a chunked POST with the given body framing.
func chunked(framing string) string {
	return "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + framing
}

// Requests at the edge of the strict rules that must still be accepted.
func TestStrictButValidRequests(t *testing.T) {
	tests := []struct{ name, in, target, host, body string }{
		{"chunk ext token", chunked("4;a\r\nWiki\r\n0\r\n\r\n"), "/", "a", "Wiki"},
		{"chunk ext name=token", chunked("4;name=val;x=1\r\nWiki\r\n0;last=yes\r\n\r\n"), "/", "a", "Wiki"},
		{"chunk ext quoted", chunked("4;q=\"a b;\\\"c\"\r\nWiki\r\n0\r\n\r\n"), "/", "a", "Wiki"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "*", "a", ""},
		{"Host with port", "GET / HTTP/1.1\r\nHost: example.org:8080\r\n\r\n", "/", "example.org:8080", ""},
		{"Host IPv6", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "/", "[::1]:80", ""},
		{"Host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "/", "", ""},
		{"Host percent and sub-delims", "GET / HTTP/1.1\r\nHost: a%41-b_c~d!e\r\n\r\n", "/", "a%41-b_c~d!e", ""},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", "/", "", ""},
		{"query in target", "GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r\n", "/a?b=c", "a", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, peer := newPair(t)
			req := serverGot(t, s, peer, tt.in)
			readWhole(t, s, req, ReadFinished)
			require.Equal(t, tt.target, req.Target, "target")
			require.Equal(t, tt.host, req.Header.Get("Host"), "host")
			require.Equal(t, tt.body, string(req.Body), "body")
		})
	}
}

// RFC 9112 section 2.2: a server ignores at least one empty line before a request line (some clients send CRLF
// after a POST body); the request after it is read as usual, here behind a first one on the same connection.
func TestOneEmptyLineBeforeRequest(t *testing.T) {
	s, peer := newPair(t)
	req := serverGot(t, s, peer, "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
	readWhole(t, s, req, ReadFinished)
	require.Equal(t, "hi", string(req.Body), "first body")
	require.NoError(t, s.WriteResponse(&Response{Status: 204}))
	var next Request
	require.NoError(t, s.ReadRequest(&next))
	require.Equal(t, "/2", next.Target, "second target")

	s2, peer2 := newPair(t)
	require.Equal(t, "/", serverGot(t, s2, peer2, "\r\n"+r0).Target, "target after a leading CRLF")
}

func TestHostileRequests(t *testing.T) {
	require.GreaterOrEqual(t, len(hostileRequests), 40, "hostile requests")
	for _, tc := range hostileRequests {
		t.Run(tc.name, func(t *testing.T) {
			s, peer := newPair(t, tc.cfg)
			go func() {
				_, _ = io.WriteString(peer, tc.in)
				_ = peer.(*net.TCPConn).CloseWrite()
			}()
			var req Request
			err := s.ReadRequest(&req)
			for i := 0; err == nil && s.ReadState() != ReadFinished; i++ {
				require.LessOrEqual(t, i, len(tc.in), "ReadSome makes no progress")
				err = s.ReadSome(&req)
			}
			require.ErrorIs(t, err, tc.err)
			if tc.err != io.ErrUnexpectedEOF {
				require.Contains(t, err.Error(), ": ", "error carries no detail")
			}
			require.Equal(t, false, s.IsOpen(), "IsOpen")
			states(t, s, ReadEmpty, WriteEmpty)
			want := ""
			if tc.reply != "" {
				want = "HTTP/1.1 " + replyStatus(tc.reply) + "\r\nContent-Length: " + strconv.Itoa(len(tc.reply)) +
					"\r\nConnection: close\r\n\r\n" + tc.reply
			}
			require.Equal(t, want, expectClosed(t, peer), "wire")
		})
	}
}

// A parse error in the body after the response started sends no canned reply (it would corrupt the response):
// the connection just closes.
func TestHostileBodyAfterResponseStarted(t *testing.T) {
	s, peer := newPair(t)
	req := serverGot(t, s, peer, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
	require.NoError(t, s.WriteResponseMetadata(&Response{Status: 200}))
	send(t, peer, "zz\r\n")
	require.ErrorIs(t, s.ReadSome(req), ErrParsing)
	require.Equal(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", expectClosed(t, peer), "wire")
}

// hostileResponses are malformed responses read by a client after one GET: each fails with the error and closes.
var hostileResponses = []struct {
	name string
	in   string
	err  error
}{
	{"status code 4 digits", "HTTP/1.1 2000 OK\r\n\r\n", ErrParsing},
	{"status code 2 digits", "HTTP/1.1 20 OK\r\n\r\n", ErrParsing},
	{"status code letters", "HTTP/1.1 2x0 OK\r\n\r\n", ErrParsing},
	{"no space after status", "HTTP/1.1 200OK\r\n\r\n", ErrParsing},
	{"HTTP/2 status line", "HTTP/2 200 OK\r\n\r\n", ErrParsing},
	{"status below 100", "HTTP/1.1 099 Low\r\n\r\n", ErrParsing},
	{"bare CR in reason", "HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n", ErrParsing},
	{"conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", ErrParsing},
	{"invalid Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nab", ErrParsing},
	{"empty Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n", ErrParsing},
	{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", ErrParsing},
	{"chunk data too long", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", ErrParsing},
	{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", ErrParsing},
	{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", ErrParsing},
	{"EOF in status line", "HTTP/1.1 20", io.ErrUnexpectedEOF},
	{"EOF in body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", io.ErrUnexpectedEOF},
	{"EOF in chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", io.ErrUnexpectedEOF},
	{"second response without request", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", ErrParsing},
	{"body too large", "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", ErrBodyTooLarge},
}

func TestHostileResponses(t *testing.T) {
	for _, tc := range hostileResponses {
		t.Run(tc.name, func(t *testing.T) {
			s, peer := newPair(t, Config{MaxBodyBytes: 1000})
			require.NoError(t, s.WriteRequest(&Request{Method: "GET", Target: "/", Header: http.Header{"Host": {"a"}}}))
			expectWire(t, peer, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			go func() {
				_, _ = io.WriteString(peer, tc.in)
				_ = peer.(*net.TCPConn).CloseWrite()
			}()
			var res Response
			var err error
			for i := 0; err == nil && i < 10; i++ {
				if s.ReadState() == ReadEmpty {
					err = s.ReadResponse(&res)
				} else {
					err = s.ReadSome(&res)
				}
			}
			require.ErrorIs(t, err, tc.err)
			require.Equal(t, false, s.IsOpen(), "IsOpen")
			states(t, s, ReadEmpty, WriteEmpty)
			require.Equal(t, "", expectClosed(t, peer), "wire")
		})
	}
}
