package congestion

// roundCounter counts round trips without packet numbers: a round ends when
// as many bytes have been acknowledged or declared lost as had been sent when
// it began, so every packet in flight at its start has been accounted for.
// Lost bytes count too, or one loss would stretch a round until its
// retransmission is acknowledged.
type roundCounter struct {
	sent  int64 // bytes sent, retransmissions included
	done  int64 // bytes acknowledged or declared lost
	end   int64 // the round ends when done reaches it
	count int64 // rounds ended so far
}

func (r *roundCounter) onSent(size int) { r.sent += int64(size) }

// onDone accounts n bytes acknowledged or lost and reports whether that ended
// a round (and so began the next).
func (r *roundCounter) onDone(n int) bool {
	r.done += int64(n)
	if r.done < r.end {
		return false
	}
	r.end = r.sent + 1
	r.count++
	return true
}
