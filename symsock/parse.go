package symsock

import (
	"net/http"
	"net/textproto"
	"strings"
)

// headScan finds the end of a start line plus header section, or of a trailer section, in a buffer that fills
// over several reads. It remembers where it stopped so each byte is examined once, and enforces the limits on the
// partial data so an endless line is refused before it is buffered whole. Every line must end with CRLF (RFC 9112
// section 2.2 lets a recipient accept a bare LF; accepting it is how one parser comes to disagree with another
// about where a message ends).
type headScan struct {
	off      int  // next unexamined line start, relative to the section start
	lead     int  // length of the one empty line ignored before a request line (0 or 2)
	startLen int  // end of the start line with its ending, relative to the section start (0 for trailers)
	fields   int  // field lines seen
	trailer  bool // a trailer section: no start line
	request  bool // a request head: one empty line before the request line is ignored
}

// scan examines data (the section so far). It returns the length of the section without its final empty line and
// the length including it once the empty line was seen, or 0, 0 when more data is needed. Both count the ignored
// empty line before a request line, whose length is sc.lead.
func (sc *headScan) scan(data []byte, cfg *config) (head, total int, err *protocolError) {
	where := "header section"
	if sc.trailer {
		where = "trailer section"
	}
	for {
		rest := data[sc.off:]
		i := indexLF(rest)
		if i < 0 {
			return 0, 0, sc.checkPartial(len(rest), cfg)
		}
		line := rest[:i]
		if len(line) == 0 || line[len(line)-1] != '\r' {
			return 0, 0, parseErr(replyInvalidData, "%s: line %d ends with a bare LF, not CRLF", where, sc.fields+1)
		}
		empty := len(line) == 1
		if !sc.trailer && sc.off == sc.lead {
			if empty {
				if sc.request && sc.lead == 0 {
					// A client may end a request body with an extra CRLF; one is ignored (RFC 9112 section 2.2).
					sc.lead = i + 1
					sc.off = sc.lead
					continue
				}
				return 0, 0, parseErr(replyInvalidData, "empty line before the start line")
			}
			if n := len(line); n > cfg.maxStartLine+1 {
				return 0, 0, startLineTooLong(cfg)
			}
			sc.off += i + 1
			sc.startLen = sc.off
			continue
		}
		if empty {
			return sc.off, sc.off + i + 1, nil
		}
		sc.fields++
		if sc.fields > cfg.maxHeaderN {
			return 0, 0, sectionTooLarge(sc.trailer, "more than %d fields", cfg.maxHeaderN)
		}
		sc.off += i + 1
		if sc.off-sc.startLen > cfg.maxHeader {
			return 0, 0, sectionTooLarge(sc.trailer, "larger than %d bytes", cfg.maxHeader)
		}
	}
}

func (sc *headScan) checkPartial(n int, cfg *config) *protocolError {
	if !sc.trailer && sc.off == sc.lead {
		if n > cfg.maxStartLine+1 {
			return startLineTooLong(cfg)
		}
		return nil
	}
	if sc.off+n-sc.startLen > cfg.maxHeader+1 {
		return sectionTooLarge(sc.trailer, "larger than %d bytes", cfg.maxHeader)
	}
	return nil
}

func startLineTooLong(cfg *config) *protocolError {
	e := parseErr(replyRequestLineLong, "start line longer than %d bytes", cfg.maxStartLine)
	e.kind = ErrBufferExhausted
	return e
}

func sectionTooLarge(trailer bool, format string, arg int) *protocolError {
	what := "header section "
	if trailer {
		what = "trailer section "
	}
	e := parseErr(replyHeaderTooLarge, what+format, arg)
	e.kind = ErrBufferExhausted
	return e
}

func indexLF(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// fieldInfo collects what the socket itself needs from a received header section.
type fieldInfo struct {
	hosts       int
	host        string
	lengths     int
	length      string
	te          []string
	connClose   bool
	connKeep    bool
	connUpgrade bool
	expects     int
}

// parseFields parses the field lines of section (a string holding the whole section, lines ending in CRLF) into h
// and returns what the socket needs.
func parseFields(section string, h http.Header, vals []string, info *fieldInfo, trailer bool) *protocolError {
	line := 0
	for section != "" {
		line++
		i := strings.IndexByte(section, '\n')
		l := section[:i]
		section = section[i+1:]
		if n := len(l); n > 0 && l[n-1] == '\r' {
			l = l[:n-1]
		}
		where := "header line"
		if trailer {
			where = "trailer line"
		}
		if l[0] == ' ' || l[0] == '\t' {
			return parseErr(replyInvalidData, "%s %d: obsolete line folding", where, line)
		}
		colon := strings.IndexByte(l, ':')
		if colon < 0 {
			return parseErr(replyInvalidData, "%s %d: no colon", where, line)
		}
		name := l[:colon]
		if name == "" {
			return parseErr(replyInvalidData, "%s %d: empty field name", where, line)
		}
		for j := 0; j < len(name); j++ {
			if !isTchar(name[j]) {
				if c := name[j]; c == ' ' || c == '\t' {
					return parseErr(replyInvalidData, "%s %d: whitespace in or before the colon of the field name", where, line)
				}
				return parseErr(replyInvalidData, "%s %d: invalid byte %q in field name", where, line, name[j])
			}
		}
		value := trimOWS(l[colon+1:])
		for j := 0; j < len(value); j++ {
			if c := value[j]; c < ' ' && c != '\t' || c == 0x7f {
				if c == '\r' {
					return parseErr(replyInvalidData, "%s %d: bare CR in field value", where, line)
				}
				return parseErr(replyInvalidData, "%s %d: control byte %q in field value", where, line, c)
			}
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		if info != nil {
			switch key {
			case "Host":
				info.hosts++
				info.host = value
			case "Content-Length":
				info.lengths++
				info.length = value
			case "Transfer-Encoding":
				info.te = append(info.te, value)
			case "Connection":
				info.connClose = info.connClose || listHasToken(value, "close")
				info.connKeep = info.connKeep || listHasToken(value, "keep-alive")
				info.connUpgrade = info.connUpgrade || listHasToken(value, "upgrade")
			case "Expect":
				info.expects++
			}
		}
		if old, ok := h[key]; ok {
			h[key] = append(old, value)
		} else {
			vals = append(vals, value)
			h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	return nil
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isTchar reports whether c may appear in a token (RFC 9110 section 5.6.2).
func isTchar(c byte) bool {
	return c < 0x80 && tchars[c]
}

var tchars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// isTargetByte reports whether c may appear in a request target: visible ASCII except '#' (a fragment is never
// sent, RFC 9112 section 3.2).
func isTargetByte(c byte) bool { return c > ' ' && c < 0x7f && c != '#' }

// parseVersion parses "HTTP/1.x" and returns x.
func parseVersion(v string) (int, bool) {
	if len(v) != 8 || v[:7] != "HTTP/1." || v[7] < '0' || v[7] > '9' {
		return 0, false
	}
	if v[7] == '0' {
		return 0, true
	}
	return 1, true
}

// parseContentLength parses a Content-Length value: 1*DIGIT that fits an int64.
func parseContentLength(v string) (int64, bool) {
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63-1-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// transferCoding reports how a Transfer-Encoding list ends: chunked (once, last) or not, how many codings it
// lists, and whether the list is syntactically valid and not empty.
func transferCoding(values []string) (chunked bool, codings int, valid bool) {
	var chunks int
	last := ""
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			item = trimOWS(item)
			if item == "" {
				continue
			}
			for j := 0; j < len(item); j++ {
				if !isTchar(item[j]) && item[j] != ';' && item[j] != '=' && item[j] != ' ' && item[j] != '\t' && item[j] != '"' {
					return false, 0, false
				}
			}
			codings++
			last = item
			if strings.EqualFold(item, "chunked") {
				chunks++
			}
		}
	}
	if codings == 0 {
		return false, 0, false
	}
	return chunks == 1 && strings.EqualFold(last, "chunked"), codings, true
}
