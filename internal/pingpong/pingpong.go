// Package pingpong times request/response round trips over a byte stream, for the benchmark programs that compare
// p2phttp's latency with kernel TCP's and quic-go's: one side echoes fixed-size messages back, the other writes one,
// waits for its echo, and times each round trip.
package pingpong

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// MaxSize is the largest message Echo and Client accept, so a bad flag cannot make them allocate without bound.
const MaxSize = 1 << 20

// ErrMismatch means an echo did not carry the bytes that were sent.
var ErrMismatch = errors.New("pingpong: the echo differs from the message sent")

// Result summarises timed round trips. The JSON names are what the benchmark programs print.
type Result struct {
	N        int     `json:"n"`
	MedianUS float64 `json:"median_us"`
	P90US    float64 `json:"p90_us"`
	MinUS    float64 `json:"min_us"`
	MaxUS    float64 `json:"max_us"`
}

// Summarize turns round-trip times into a Result; it sorts times in place. An empty slice gives a zero Result.
func Summarize(times []time.Duration) Result {
	if len(times) == 0 {
		return Result{}
	}
	slices.Sort(times)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return Result{N: len(times), MedianUS: us(times[len(times)/2]), P90US: us(times[len(times)*9/10]),
		MinUS: us(times[0]), MaxUS: us(times[len(times)-1])}
}

// Time runs roundTrip n times in sequence and summarises how long each took; it stops at the first error.
func Time(n int, roundTrip func() error) (Result, error) {
	if n < 1 {
		return Result{}, errors.New("pingpong: need at least one round trip")
	}
	times := make([]time.Duration, n)
	for i := range times {
		start := time.Now()
		if err := roundTrip(); err != nil {
			return Result{}, fmt.Errorf("round trip %d: %w", i+1, err)
		}
		times[i] = time.Since(start)
	}
	return Summarize(times), nil
}

// Client returns a round trip over rw: write one size-byte message (its bytes change every time, so a stale echo
// is caught) and read its echo in full, failing with ErrMismatch when the echo differs.
func Client(rw io.ReadWriter, size int) (func() error, error) {
	if size < 1 || size > MaxSize {
		return nil, fmt.Errorf("pingpong: message size %d out of range 1-%d", size, MaxSize)
	}
	msg := make([]byte, size)
	echo := make([]byte, size)
	var seq byte
	return func() error {
		seq++
		for i := range msg {
			msg[i] = seq + byte(i)
		}
		if _, err := rw.Write(msg); err != nil {
			return fmt.Errorf("writing: %w", err)
		}
		if _, err := io.ReadFull(rw, echo); err != nil {
			return fmt.Errorf("reading the echo: %w", err)
		}
		if !bytes.Equal(msg, echo) {
			return ErrMismatch
		}
		return nil
	}, nil
}

// Echo reads size-byte messages from rw and writes each back whole, in one write, until the peer ends the stream
// at a message boundary (nil) or something fails. It returns how many messages it echoed.
func Echo(rw io.ReadWriter, size int) (int, error) {
	if size < 1 || size > MaxSize {
		return 0, fmt.Errorf("pingpong: message size %d out of range 1-%d", size, MaxSize)
	}
	buf := make([]byte, size)
	for n := 0; ; n++ {
		if _, err := io.ReadFull(rw, buf); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, fmt.Errorf("reading message %d: %w", n+1, err)
		}
		if _, err := rw.Write(buf); err != nil {
			return n, fmt.Errorf("echoing message %d: %w", n+1, err)
		}
	}
}
