package utp

import (
	"net"
	"testing"
	"time"
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

// A batch longer than one segmentation-offloaded send carries (64 segments, 65,507 bytes) goes out in several, and
// a batch whose sizes do not form one run goes by sendmmsg: every datagram arrives whole and in order.
func TestBatchSenderSplitsRuns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int
	}{
		{"100 equal", repeat(1409, 100)},
		{"equal then a shorter last", append(repeat(1409, 70), 300)},
		{"a shorter one mid-batch", append(append(repeat(1409, 10), 200), repeat(1409, 10)...)},
		{"small first", append([]int{90}, repeat(1409, 5)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			defer from.Close()
			to, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			defer to.Close()
			require.NoError(t, to.SetReadBuffer(4<<20))
			send := newBatchSender(from)
			require.NotNil(t, send)
			var bufs [][]byte
			for i, n := range tc.sizes {
				b := make([]byte, n)
				for j := range b {
					b[j] = byte(i)
				}
				bufs = append(bufs, b)
			}
			n, err := send(bufs, to.LocalAddr().(*net.UDPAddr))
			require.NoError(t, err)
			require.Equal(t, len(bufs), n)
			buf := make([]byte, 65536)
			require.NoError(t, to.SetReadDeadline(time.Now().Add(5*time.Second)))
			for i, want := range bufs {
				k, _, err := to.ReadFromUDPAddrPort(buf)
				require.NoError(t, err, "datagram %d", i)
				require.Equal(t, want, buf[:k], "datagram %d", i)
			}
		})
	}
}

func repeat(n, times int) []int {
	out := make([]int, times)
	for i := range out {
		out[i] = n
	}
	return out
}
