//go:build unix

package main

import (
	"errors"
	"os"
	"syscall"
)

// lockPart takes an exclusive lock on a part file for as long as it is open, so that two runs of get with the same
// -o cannot interleave their bytes in it. It reports false when another process holds the lock.
func lockPart(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
