package main

import (
	"time"
)

// Defaults of what serve allows each peer; every one is a flag.
const (
	defaultReadHeaderTimeout = 30 * time.Second // a request's header section must arrive within this
	defaultIdleTimeout       = 2 * time.Minute  // a kept-alive stream may wait this long for its next request
	defaultMaxStreams        = 32               // streams one peer may have served at once (a browser opens ~6)
)

// serveLimits bound what one peer can make serve hold: each meeting gets its own stream cap, so a guest that opens
// streams without end is refused more, while other guests are not affected.
type serveLimits struct {
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxStreams        int
}

func (l *serveLimits) register(fs *flagSet) {
	fs.DurationVar(&l.readHeaderTimeout, "read-header-timeout", defaultReadHeaderTimeout,
		"close a stream whose request header does not arrive within this `DURATION`; 0 waits forever")
	fs.DurationVar(&l.idleTimeout, "idle-timeout", defaultIdleTimeout,
		"close a stream that waits this `DURATION` for its next request; 0 means the read-header timeout")
	fs.IntVar(&l.maxStreams, "max-streams", defaultMaxStreams,
		"serve at most `N` streams of one peer at once; it may open more when some have ended")
}

func (l *serveLimits) check() error {
	switch {
	case l.readHeaderTimeout < 0:
		return usagef("--read-header-timeout must not be negative")
	case l.idleTimeout < 0:
		return usagef("--idle-timeout must not be negative")
	case l.maxStreams < 1:
		return usagef("--max-streams must be at least 1")
	}
	return nil
}
