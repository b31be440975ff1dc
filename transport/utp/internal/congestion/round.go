package congestion

// roundCounter counts round trips without packet numbers: a round ends when
// as many bytes have been acknowledged or declared lost as were in flight
// when it began, so every packet then in flight has been accounted for. Lost
// bytes count too, or one loss would stretch a round until its retransmission
// is acknowledged. Counting from the bytes in flight, which the engine knows
// exactly, rather than from totals keeps a packet counted twice (declared
// lost, then acknowledged after all) from shortening more than its own round.
type roundCounter struct {
	left  int   // bytes of this round still to be accounted for
	count int64 // rounds ended so far
}

// onDone accounts n bytes acknowledged or lost, leaving inFlight bytes in
// flight, and reports whether that ended a round (and so began the next).
func (r *roundCounter) onDone(n, inFlight int) bool {
	r.left -= n
	if r.left > 0 {
		return false
	}
	// With nothing in flight, the next byte accounted for ends the round.
	r.left = max(inFlight, 1)
	r.count++
	return true
}
