//go:build !aix && !darwin && !dragonfly && !freebsd && !linux && !netbsd && !openbsd && !solaris && !windows && !zos

package utp

// batchReads: golang.org/x/net cannot read messages here; the socket is read with ReadFrom.
const batchReads = false
