//go:build !linux

package engine

// newWakeTimer returns a timer on a runtime timer: only Linux has a timerfd.
func newWakeTimer(fire func()) wakeTimer { return newRuntimeTimer(fire) }
