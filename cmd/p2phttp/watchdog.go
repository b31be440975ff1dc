package main

import (
	"io"
	"time"
)

// watchdog calls fire when it is not kicked for a while: get uses it to give up on a peer that stops sending. Time
// spent writing what came (to a slow FIFO reader, say) is not the peer's silence and does not count.
type watchdog struct {
	d time.Duration
	t *time.Timer // nil when disabled (d == 0)
}

func newWatchdog(d time.Duration, fire func()) *watchdog {
	w := &watchdog{d: d}
	if d > 0 {
		w.t = time.AfterFunc(d, fire)
	}
	return w
}

// kick restarts the countdown.
func (w *watchdog) kick() {
	if w.t != nil {
		w.t.Reset(w.d)
	}
}

func (w *watchdog) stop() {
	if w.t != nil {
		w.t.Stop()
	}
}

// reader kicks the watchdog whenever r delivers bytes.
func (w *watchdog) reader(r io.Reader) io.Reader { return &kickReader{r: r, w: w} }

type kickReader struct {
	r io.Reader
	w *watchdog
}

func (k *kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if n > 0 {
		k.w.kick()
	}
	return n, err
}

// writer pauses the watchdog while a write to w blocks.
func (w *watchdog) writer(dst io.Writer) io.Writer { return &pauseWriter{w: dst, wd: w} }

type pauseWriter struct {
	w  io.Writer
	wd *watchdog
}

func (p *pauseWriter) Write(b []byte) (int, error) {
	p.wd.stop()
	defer p.wd.kick()
	return p.w.Write(b)
}
