package symsock

import (
	"net/http"
	"strings"
)

// Request is an HTTP request as read or written by a Socket.
//
// Reads reuse the message: ReadRequest clears Method, Target, Header and Trailer (reusing the maps) and truncates
// Body to zero length, keeping its capacity, then appends the body bytes it reads. A caller that keeps a body
// across reads must copy it or set Body to nil first. Header names read from the wire are canonical
// (http.CanonicalHeaderKey); written headers go out sorted by name.
type Request struct {
	Method  string
	Target  string
	Header  http.Header
	Trailer http.Header
	Body    []byte
}

// Response is an HTTP response as read or written by a Socket. Reads reuse it like a Request. When writing, an
// empty Reason is replaced by http.StatusText(Status).
type Response struct {
	Status  int
	Reason  string
	Header  http.Header
	Trailer http.Header
	Body    []byte
}

// Message is a *Request or a *Response: what ReadSome appends to and Write, WriteTrailers send from.
type Message interface {
	parts() (header, trailer *http.Header, body *[]byte)
}

func (r *Request) parts() (header, trailer *http.Header, body *[]byte) {
	return &r.Header, &r.Trailer, &r.Body
}

func (r *Response) parts() (header, trailer *http.Header, body *[]byte) {
	return &r.Header, &r.Trailer, &r.Body
}

// ContinueRequired reports whether req asks for "100 Continue" before its body: it has exactly one Expect header,
// equal to "100-continue" ignoring case. (The socket drops every Expect of an HTTP/1.0 request and all of them
// when there are several.)
func ContinueRequired(req *Request) bool {
	v := headerValues(req.Header, "Expect")
	return len(v) == 1 && strings.EqualFold(strings.TrimSpace(v[0]), "100-continue")
}

// UpgradeDesired reports whether req asks to switch protocols: it has an Upgrade header and a Connection header
// with the token "upgrade".
func UpgradeDesired(req *Request) bool {
	return len(headerValues(req.Header, "Upgrade")) > 0 && hasToken(headerValues(req.Header, "Connection"), "upgrade")
}

// headerValues returns every value of the header name (given canonical), matching keys case-insensitively so that
// user-built maps with non-canonical keys are honoured too.
func headerValues(h http.Header, name string) []string {
	if v, ok := h[name]; ok && !hasOtherCase(h, name) {
		return v
	}
	var all []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			all = append(all, v...)
		}
	}
	return all
}

// hasOtherCase reports whether h holds name under another spelling as well; a cheap test on the common case of a
// small canonical map.
func hasOtherCase(h http.Header, name string) bool {
	for k := range h {
		if len(k) == len(name) && k != name && strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// hasToken reports whether a comma-separated list in any of values holds token, ignoring case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		if listHasToken(v, token) {
			return true
		}
	}
	return false
}

// listHasToken reports whether the comma-separated list v holds token, ignoring case.
func listHasToken(v, token string) bool {
	for v != "" {
		var item string
		item, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(trimOWS(item), token) {
			return true
		}
	}
	return false
}
