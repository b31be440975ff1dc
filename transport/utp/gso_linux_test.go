package utp

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// cmsg builds one control message carrying a 4-byte integer.
func cmsg(level, typ int32, v int32) []byte {
	b := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(4))
	*(*int32)(unsafe.Pointer(&b[unix.CmsgLen(0)])) = v
	return b
}

func TestGROSegmentSize(t *testing.T) {
	gro := cmsg(unix.SOL_UDP, unix.UDP_GRO, 1352)
	other := cmsg(unix.SOL_IP, unix.IP_TOS, 7)
	overlong := cmsg(unix.SOL_UDP, unix.UDP_GRO, 1352)
	(*unix.Cmsghdr)(unsafe.Pointer(&overlong[0])).SetLen(1000)
	for _, tc := range []struct {
		name string
		oob  []byte
		want int
	}{
		{"none", nil, 0},
		{"gro", gro, 1352},
		{"after another message", append(append([]byte{}, other...), gro...), 1352},
		{"another message only", other, 0},
		{"truncated", gro[:unix.CmsgLen(0)+1], 0},
		{"length beyond the buffer", overlong, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, groSegmentSize(tc.oob))
		})
	}
}

func TestAdjoining(t *testing.T) {
	arr := []byte("aaabbbcc--")
	got, ok := adjoining([][]byte{arr[0:3], arr[3:6], arr[6:8]}, 8)
	require.True(t, ok)
	require.Equal(t, "aaabbbcc", string(got))

	_, ok = adjoining([][]byte{arr[0:3], arr[4:7]}, 6)
	require.False(t, ok, "a gap between datagrams")
	_, ok = adjoining([][]byte{[]byte("aaa"), []byte("bbb")}, 6)
	require.False(t, ok, "datagrams in different arrays")
	_, ok = adjoining([][]byte{arr[3:6], arr[0:3]}, 6)
	require.False(t, ok, "datagrams out of order")
}
