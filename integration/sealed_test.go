//go:build linux

package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/nslab"
	"github.com/stretchr/testify/require"
)

// sealedMarker fills the file of TestWANCaptureSeesNoPlaintext: any of it in clear on the wire would show.
const sealedMarker = "P2PHTTP-PLAINTEXT-MARKER-0123456789/"

// wanCapture records every frame crossing a router's WAN interface, both ways, and sorts what it saw.
type wanCapture struct {
	f *os.File

	mu          sync.Mutex
	frames      int
	udpPayload  int64 // bytes of UDP payload seen
	sealedBytes int64 // bytes of UDP payloads starting with the sealed-datagram type byte (a GSO super-frame counts whole)
	markerHits  int
	httpInUDP   int
	markerInTCP int
	first       string // the first offending payload, for the failure message
}

// startWANCapture opens an AF_PACKET socket on r's "wan" interface, inside r's namespace.
func startWANCapture(t *testing.T, r *nslab.Router) *wanCapture {
	t.Helper()
	c := &wanCapture{}
	err := r.Do(func() error {
		all := uint16(syscall.ETH_P_ALL)
		proto := int(all<<8 | all>>8) // network byte order
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<20)
		ifi, err := net.InterfaceByName("wan") // netlink in the thread's namespace
		if err != nil {
			syscall.Close(fd)
			return err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			syscall.Close(fd)
			return err
		}
		c.f = os.NewFile(uintptr(fd), "capture:wan")
		return nil
	})
	require.NoError(t, err, "capture on %s wan", r.NS)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, err := c.f.Read(buf)
			if err != nil {
				return
			}
			c.frame(buf[:n])
		}
	}()
	t.Cleanup(func() {
		c.f.Close()
		<-done
	})
	return c
}

// frame inspects one Ethernet frame carrying IPv4.
func (c *wanCapture) frame(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames++
	if len(b) < 14+20 || uint16(b[12])<<8|uint16(b[13]) != 0x0800 {
		return
	}
	ip := b[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl {
		return
	}
	l4 := ip[ihl:]
	hasMarker := bytes.Contains(b, []byte(sealedMarker[:16]))
	switch ip[9] {
	case syscall.IPPROTO_UDP:
		if len(l4) < 8 {
			return
		}
		payload := l4[8:]
		c.udpPayload += int64(len(payload))
		if len(payload) > 0 && payload[0] == 0xD8 {
			c.sealedBytes += int64(len(payload))
		}
		if hasMarker {
			c.markerHits++
		}
		if bytes.Contains(payload, []byte("HTTP/1.1")) || bytes.Contains(payload, []byte("GET /")) {
			c.httpInUDP++
		}
		if (hasMarker || bytes.Contains(payload, []byte("HTTP/1."))) && c.first == "" {
			c.first = fmt.Sprintf("%q", payload[:min(len(payload), 80)])
		}
	case syscall.IPPROTO_TCP:
		// The signalling channel (plain HTTP in the lab) never carries the file.
		if hasMarker {
			c.markerInTCP++
		}
	}
}

// A network observer on a router's WAN link, watching a peer fetch a file full of a known marker, sees only sealed
// datagrams: no marker and no HTTP text in any UDP payload, and no marker anywhere.
func TestWANCaptureSeesNoPlaintext(t *testing.T) {
	requireBinary(t)
	lab := nslab.Start(t, nslab.Config{Routers: twoRouters(nslab.PortRestrictedCone, nslab.PortRestrictedCone)})
	capture := startWANCapture(t, lab.Routers[0]) // the serving peer's router
	startSignal(t, lab)

	dir := t.TempDir()
	const size = 8 << 20
	content := []byte(strings.Repeat(sealedMarker, size/len(sealedMarker)+1)[:size])
	require.NoError(t, os.WriteFile(filepath.Join(dir, "marker.txt"), content, 0o644))
	code := fmt.Sprintf("%d-lab-sealed", 100+time.Now().UnixNano()%900)
	startP2P(t, lab.Peer("a"), "serve", peerArgs("serve", "--dir", dir, code)...)
	out := filepath.Join(t.TempDir(), "marker.txt")
	get := startP2P(t, lab.Peer("b"), "get", peerArgs("get", code, "/marker.txt", "-o", out)...)
	get.waitConnected(t, connectTimeout)
	require.NoError(t, get.wait(t, transferTimeout), "get")
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.True(t, bytes.Equal(got, content), "fetched %d bytes, not the %d-byte marker file", len(got), len(content))
	time.Sleep(200 * time.Millisecond) // the last frames reach the capture

	capture.mu.Lock()
	defer capture.mu.Unlock()
	t.Logf("WAN capture: %d frames, %d bytes of UDP payload, %d of them in sealed datagrams", capture.frames, capture.udpPayload, capture.sealedBytes)
	// The capture saw the transfer: at least the file's size crossed the WAN in sealed datagrams.
	require.GreaterOrEqual(t, capture.udpPayload, int64(size), "bytes of UDP payload the capture saw: not the transfer")
	require.GreaterOrEqual(t, capture.sealedBytes, int64(size), "bytes of sealed datagrams the capture saw: not the transfer")
	require.Zero(t, capture.markerHits, "plaintext on the WAN: UDP frames with the marker; first: %s", capture.first)
	require.Zero(t, capture.markerInTCP, "plaintext on the WAN: TCP frames with the marker; first: %s", capture.first)
	require.Zero(t, capture.httpInUDP, "plaintext on the WAN: UDP payloads with HTTP text; first: %s", capture.first)
}
