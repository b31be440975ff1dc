package symsock

import "errors"

var errTODO = errors.New("symsock: not implemented yet")

type bodyFraming struct{}
type readScratch struct{}
type writeScratch struct{}
type bodyReader struct {
	s   *Socket
	m   Message
	gen uint64
}

func (b *bodyReader) Read(p []byte) (int, error)            { return 0, errTODO }
func (s *Socket) readRequest(req *Request) error            { return errTODO }
func (s *Socket) readResponse(res *Response) error          { return errTODO }
func (s *Socket) readSome(m Message) error                  { return errTODO }
func (s *Socket) writeRequest(req *Request) error           { return errTODO }
func (s *Socket) writeRequestMetadata(req *Request) error   { return errTODO }
func (s *Socket) writeResponse(res *Response) error         { return errTODO }
func (s *Socket) writeResponseContinue() error              { return errTODO }
func (s *Socket) writeResponseMetadata(res *Response) error { return errTODO }
func (s *Socket) write(m Message) error                     { return errTODO }
func (s *Socket) writeEnd(m Message) error                  { return errTODO }
