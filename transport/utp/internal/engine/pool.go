package engine

import "sync"

// Buffers come from a few size classes so that a change of datagram size (MTU
// discovery) never mixes sizes within a pool. Each buffer travels as a
// *[]byte so putting it back does not allocate.
var bufClasses = [...]int{256, 2048, 4096, 9216, 16384, 65536}

var bufPools [len(bufClasses)]sync.Pool

func init() {
	for i, size := range bufClasses {
		bufPools[i].New = func() any {
			b := make([]byte, size)
			return &b
		}
	}
}

func classOf(n int) int {
	for i, size := range bufClasses {
		if n <= size {
			return i
		}
	}
	return -1
}

// getBuf returns a buffer holding at least n bytes (n at most 65536), with
// len n.
func getBuf(n int) *[]byte {
	b := bufPools[classOf(n)].Get().(*[]byte)
	*b = (*b)[:n]
	return b
}

// putBuf returns b to its pool; b must not be used afterwards.
func putBuf(b *[]byte) {
	if b == nil {
		return
	}
	*b = (*b)[:cap(*b)]
	if i := classOf(cap(*b)); i >= 0 && bufClasses[i] == cap(*b) {
		bufPools[i].Put(b)
	}
}
