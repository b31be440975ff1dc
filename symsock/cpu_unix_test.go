//go:build unix

package symsock

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the test process has used, a measure of cost that a busy
// machine disturbs less than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
