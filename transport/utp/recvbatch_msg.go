//go:build aix || darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris || windows || zos

package utp

// batchReads: golang.org/x/net reads messages here (several per call on Linux, one elsewhere).
const batchReads = true
