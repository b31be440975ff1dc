package symsock

import (
	"net/http"
	"strings"
)

// parseRequestHead parses a request head (start line and field lines, final empty line excluded) and sets up the
// exchange and the body framing (RFC 9112 sections 3, 5 and 6).
func (s *Socket) parseRequestHead(hs string, req *Request) *protocolError {
	i := strings.IndexByte(hs, '\n')
	line, fields := hs[:i], hs[i+1:]
	line = strings.TrimSuffix(line, "\r")
	if strings.IndexByte(line, '\r') >= 0 {
		return parseErr(replyInvalidData, "request line: bare CR")
	}
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return parseErr(replyInvalidData, "request line %q: no method", clip(line))
	}
	method, rest := line[:sp], line[sp+1:]
	for j := 0; j < len(method); j++ {
		if !isTchar(method[j]) {
			return parseErr(replyInvalidData, "request line: invalid byte %q in method", method[j])
		}
	}
	sp = strings.IndexByte(rest, ' ')
	if sp <= 0 {
		return parseErr(replyInvalidData, "request line %q: no target or no version", clip(line))
	}
	target, version := rest[:sp], rest[sp+1:]
	for j := 0; j < len(target); j++ {
		if !isTargetByte(target[j]) {
			return parseErr(replyInvalidData, "request line: invalid byte %q in target", target[j])
		}
	}
	minor, ok := parseVersion(version)
	if !ok {
		return parseErr(replyInvalidData, "request line: unsupported version %q", clip(version))
	}
	if target == "*" && method != "OPTIONS" {
		return parseErr(replyInvalidData, "request line: asterisk-form target with %s (only OPTIONS)", clip(method))
	}
	req.Method, req.Target = method, target
	var info fieldInfo
	if perr := parseFields(fields, req.Header, make([]string, 0, strings.Count(fields, "\n")), &info, false); perr != nil {
		return perr
	}

	keepAlive := minor == 1
	if info.connClose {
		keepAlive = false
	} else if info.connKeep {
		keepAlive = true
	}
	fr := bodyFraming{kind: bodyNone}
	contentLen := int64(0)
	if len(info.te) > 0 {
		chunked, codings, valid := transferCoding(info.te)
		if minor == 0 {
			// RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
			return parseErr(replyInvalidTE, "Transfer-Encoding in an HTTP/1.0 request")
		}
		if !valid || !chunked || codings != 1 {
			return parseErr(replyInvalidTE, "Transfer-Encoding %q: only a single final chunked is accepted", clip(strings.Join(info.te, ", ")))
		}
		fr.kind = bodyChunked
		contentLen = -1
		if info.lengths > 0 {
			// Both framings: Transfer-Encoding wins, and the connection closes after the response (section 6.3).
			delete(req.Header, "Content-Length")
			keepAlive = false
		}
	} else if info.lengths > 0 {
		var perr *protocolError
		if fr, contentLen, perr = s.lengthFraming(&info); perr != nil {
			return perr
		}
	}
	if minor == 1 && info.hosts != 1 || info.hosts > 1 {
		return parseErr(replyHostMissing, "HTTP/%d.%d request with %d Host fields", 1, minor, info.hosts)
	}
	if info.hosts == 1 && !validHost(info.host) {
		return parseErr(replyInvalidHost, "Host %q is not host[:port]", clip(info.host))
	}
	filterExpect(req.Header, minor, &info)

	s.mu.Lock()
	s.minor = minor
	s.keepAlive = keepAlive
	s.head = method == "HEAD"
	s.connect = method == "CONNECT"
	s.upgradeReq = minor == 1 && UpgradeDesired(req)
	s.contentLen = contentLen
	s.unread = contentLen
	s.continueReq = fr.kind != bodyNone && ContinueRequired(req)
	s.mu.Unlock()
	s.body = fr
	return nil
}

// lengthFraming frames a body by its Content-Length: exactly one field, plain digits, within the body limit.
func (s *Socket) lengthFraming(info *fieldInfo) (bodyFraming, int64, *protocolError) {
	if info.lengths > 1 {
		return bodyFraming{}, 0, parseErr(replyInvalidLength, "%d Content-Length fields", info.lengths)
	}
	n, ok := parseContentLength(info.length)
	if !ok {
		return bodyFraming{}, 0, parseErr(replyInvalidLength, "Content-Length %q", clip(info.length))
	}
	if s.cfg.maxBody > 0 && n > s.cfg.maxBody {
		e := parseErr(replyBodyTooLarge, "Content-Length %d larger than the limit %d", n, s.cfg.maxBody)
		e.kind = ErrBodyTooLarge
		return bodyFraming{}, 0, e
	}
	if n == 0 {
		return bodyFraming{kind: bodyNone}, 0, nil
	}
	return bodyFraming{kind: bodyLength, remaining: n}, n, nil
}

// filterExpect drops Expect and Upgrade from HTTP/1.0 messages and every Expect when there are several (as
// Boost.Http does).
func filterExpect(h http.Header, minor int, info *fieldInfo) {
	if minor == 0 {
		delete(h, "Expect")
		delete(h, "Upgrade")
	} else if info.expects > 1 {
		delete(h, "Expect")
	}
}

// parseResponseHead parses a response head and sets up the exchange and the body framing from the status and the
// method of the request it answers.
func (s *Socket) parseResponseHead(hs string, res *Response) *protocolError {
	i := strings.IndexByte(hs, '\n')
	line, fields := hs[:i], hs[i+1:]
	line = strings.TrimSuffix(line, "\r")
	if strings.IndexByte(line, '\r') >= 0 {
		return parseErr(nil, "status line: bare CR")
	}
	if len(line) < 12 || (len(line) > 12 && line[12] != ' ') || line[8] != ' ' {
		return parseErr(nil, "status line %q: malformed", clip(line))
	}
	minor, ok := parseVersion(line[:8])
	if !ok {
		return parseErr(nil, "status line: unsupported version %q", clip(line[:8]))
	}
	status := 0
	for j := 9; j < 12; j++ {
		c := line[j]
		if c < '0' || c > '9' {
			return parseErr(nil, "status line %q: invalid status code", clip(line))
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return parseErr(nil, "status line: status code %d below 100", status)
	}
	reason := ""
	if len(line) > 12 {
		reason = line[13:]
	}
	for j := 0; j < len(reason); j++ {
		if c := reason[j]; c < ' ' && c != '\t' || c == 0x7f {
			return parseErr(nil, "status line: control byte %q in reason", c)
		}
	}
	var info fieldInfo
	if perr := parseFields(fields, res.Header, make([]string, 0, strings.Count(fields, "\n")), &info, false); perr != nil {
		return perr
	}

	s.mu.Lock()
	if s.methodsHead == len(s.methods) {
		s.mu.Unlock()
		return parseErr(nil, "status line %q with no request outstanding", clip(line))
	}
	method := s.methods[s.methodsHead]
	lock10 := s.lock10
	s.mu.Unlock()

	keepAlive := minor == 1 && !lock10 && !info.connClose
	fr := bodyFraming{kind: bodyNone}
	contentLen := int64(0)
	switch {
	case status < 200, status == 204, status == 304, method == methodHead, method == methodConnect && status < 300:
		// No body (RFC 9112 section 6.3, items 1 and 2); a HEAD reply's Content-Length describes the GET.
	case len(info.te) > 0 && minor == 1:
		chunked, _, valid := transferCoding(info.te)
		if !valid {
			return parseErr(nil, "Transfer-Encoding %q: invalid", clip(strings.Join(info.te, ", ")))
		}
		contentLen = -1
		if chunked {
			fr.kind = bodyChunked
		} else {
			fr.kind = bodyUntilEOF
			keepAlive = false
		}
		if info.lengths > 0 {
			delete(res.Header, "Content-Length")
			keepAlive = false
		}
	case info.lengths > 0:
		var perr *protocolError
		if fr, contentLen, perr = s.lengthFraming(&info); perr != nil {
			return perr
		}
	default:
		fr.kind = bodyUntilEOF
		contentLen = -1
		keepAlive = false
	}
	filterExpect(res.Header, minor, &info)
	res.Status, res.Reason = status, reason

	s.mu.Lock()
	if status >= 200 {
		s.methodsHead++
		if s.methodsHead == len(s.methods) {
			s.methods, s.methodsHead = s.methods[:0], 0
		}
		s.keepAlive = keepAlive
	}
	// The stream carries another protocol from the next byte on: the caller takes it with Hijack.
	s.switched = status == 101 || method == methodConnect && status >= 200 && status < 300
	s.minor = minor
	s.contentLen = contentLen
	s.mu.Unlock()
	s.body = fr
	return nil
}

// validHost reports whether v is a Host field value (RFC 9110 section 7.2): empty, or uri-host [":" port], where
// uri-host is a reg-name, an IPv4 address or a bracketed IP literal. Userinfo, a path, a query or anything else a
// URL parser might read differently is refused.
func validHost(v string) bool {
	if v == "" {
		return true
	}
	host, port := v, ""
	if v[0] == '[' {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return false
		}
		for _, c := range []byte(v[1:end]) {
			if !isHexDigit(c) && c != ':' && c != '.' {
				return false
			}
		}
		if end == 1 {
			return false
		}
		host, port = "", v[end+1:]
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		}
	} else if i := strings.IndexByte(v, ':'); i >= 0 {
		host, port = v[:i], v[i+1:]
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !isRegNameByte(c) {
			return false
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

// isRegNameByte reports whether c may appear in a reg-name (RFC 3986 section 3.2.2): unreserved, sub-delims, or
// part of a percent-encoding.
func isRegNameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=%", c) >= 0
}

func isHexDigit(c byte) bool { return unhex(c) >= 0 }

// clip shortens a quoted fragment of peer input for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
