package symsock

// ReadState is the state of a Socket's read side. A server goes empty -> message_ready -> body_ready -> finished;
// a client goes back to empty at the end of each response.
type ReadState uint8

const (
	// ReadEmpty: no message is being read; ReadRequest or ReadResponse may start one.
	ReadEmpty ReadState = iota
	// ReadMessageReady: the start line and headers were read; body bytes may follow through ReadSome.
	ReadMessageReady
	// ReadBodyReady: the whole body was read; trailers and the end of message follow through ReadSome.
	ReadBodyReady
	// ReadFinished: a server read the whole request; it must answer before reading the next one.
	ReadFinished
)

// String returns the state's name, as Boost.Http and Emilua spell it: "empty", "message_ready", "body_ready" or "finished".
func (s ReadState) String() string {
	switch s {
	case ReadEmpty:
		return "empty"
	case ReadMessageReady:
		return "message_ready"
	case ReadBodyReady:
		return "body_ready"
	case ReadFinished:
		return "finished"
	}
	return "invalid"
}

// WriteState is the state of a Socket's write side.
type WriteState uint8

const (
	// WriteEmpty: a new message (or, on a server, the response to the request just read) may be written.
	WriteEmpty WriteState = iota
	// WriteContinueIssued: a server sent "100 Continue"; the final response follows.
	WriteContinueIssued
	// WriteMetadataIssued: the head of a streamed message was written; Write, WriteTrailers and
	// WriteEndOfMessage follow.
	WriteMetadataIssued
	// WriteFinished: a server has nothing to write until it reads the next request.
	WriteFinished
)

// String returns the state's name, as Boost.Http and Emilua spell it: "empty", "continue_issued", "metadata_issued" or "finished".
func (s WriteState) String() string {
	switch s {
	case WriteEmpty:
		return "empty"
	case WriteContinueIssued:
		return "continue_issued"
	case WriteMetadataIssued:
		return "metadata_issued"
	case WriteFinished:
		return "finished"
	}
	return "invalid"
}
