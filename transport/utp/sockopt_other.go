//go:build !unix

package utp

import "syscall"

// socketBufferSizes cannot ask the kernel here; it reports nothing rather than a guess.
func socketBufferSizes(syscall.Conn) (read, write int, err error) { return 0, 0, nil }

// socketFamilies cannot ask the kernel here: both families are assumed.
func socketFamilies(syscall.Conn) (v4, v6 bool, err error) { return true, true, nil }
