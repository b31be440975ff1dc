package symsock

import "io"

// bodyReader is the io.Reader returned by Socket.BodyReader.
type bodyReader struct {
	s   *Socket
	m   Message
	gen uint64
	off int // bytes of m.Body already returned
	eof bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	_, trailer, body := b.m.parts()
	if b.off < len(*body) {
		n := copy(p, (*body)[b.off:])
		b.off += n
		if b.off == len(*body) {
			*body, b.off = (*body)[:0], 0
		}
		return n, nil
	}
	if b.eof {
		return 0, io.EOF
	}
	s := b.s
	s.mu.Lock()
	if !s.reading && s.rgen == b.gen && s.body.done {
		s.mu.Unlock()
		b.eof = true
		return 0, io.EOF
	}
	s.mu.Unlock()
	if err := s.startBodyRead(b.m, b.gen); err != nil {
		return 0, err
	}
	dst := p[:0]
	n, err := s.pump(&dst, trailer, true, len(p))
	if err = s.endRead(err, true); err != nil {
		return n, err
	}
	if n == 0 {
		b.eof = true
		return 0, io.EOF
	}
	return n, nil
}
