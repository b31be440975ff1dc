package rendezvous

import (
	"errors"
	"strings"
)

// Step names one stage of a meeting, in the order Meet runs them.
type Step string

// The steps of a meeting.
const (
	StepGather Step = "gather" // bind the UDP socket, list interface addresses, ask STUN for the public one
	StepSignal Step = "signal" // meet through the signalling server: PAKE, key confirmation, sealed candidates
	StepPunch  Step = "punch"  // probe every candidate pair until one works both ways
	StepStream Step = "stream" // open (dialler) or accept (other side) the first uTP stream
)

// Reasons a meeting fails, matched with errors.Is against the error Meet returns. The underlying cause (for example
// utp.ErrPunchFailed, signal.ErrConfirmFailed or a *net.OpError) is wrapped too and matches as well.
var (
	ErrGatherFailed      = errors.New("no usable local candidate")
	ErrSignalUnreachable = errors.New("cannot reach signalling server")
	ErrSignalRefused     = errors.New("signalling server refused the request")
	ErrPeerNeverCame     = errors.New("peer never came")
	ErrPeerLeft          = errors.New("peer left during the meeting")
	ErrWrongCode         = errors.New("key confirmation failed: wrong code, or the messages were altered")
	ErrPunchFailed       = errors.New("punching failed on every candidate pair")
	ErrStreamFailed      = errors.New("cannot open the first stream")
)

// Error is what Meet returns when a step fails: the step, the reason (one of the Err* values above, or nil when the
// caller's context ended) and the cause.
type Error struct {
	Step   Step
	Reason error
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rendezvous: ")
	b.WriteString(string(e.Step))
	if e.Reason != nil {
		b.WriteString(": ")
		b.WriteString(e.Reason.Error())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the reason and the cause, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Reason != nil {
		errs = append(errs, e.Reason)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
