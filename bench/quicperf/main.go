// Command quicperf moves bytes over one quic-go stream between two peers behind NATs, punching the path the way
// p2phttp's peers do: each learns its public address from a STUN server, the two addresses are exchanged through a
// rendezvous, and both send to each other's public address until the NATs let the other's packets in. It is the
// quic-go column of the transport comparison (bench/transportlab), not a tool for users.
//
// Run one sender and one receiver:
//
//	quicperf -role send -stun 203.0.113.1:3478 -file big.bin
//	quicperf -role recv -stun 203.0.113.1:3478 -o -
//
// Each prints {"event":"mapped","addr":"IP:PORT"} once it knows its public address, then reads the peer's
// address as one line on stdin (the rendezvous: the harness hands each peer the other's line), unless -peer
// gives it. The sender listens and punches until the receiver's connection arrives; the receiver punches until a
// punch of the sender's arrives (so its own Initial will pass the sender's NAT), then dials, opens one stream
// and reads to its end. Each side ends by printing one JSON report: bytes, seconds (first to last byte on the
// receiver, first to last write on the sender), CPU seconds of the process (getrusage: user + system), and on
// the receiver the longest gap between two arrivals and the SHA-256 of what it got.
//
// With -rr N it times request/response round trips instead of moving bytes: the receiver writes a -size-byte
// message on its stream, the sender echoes it, and the receiver times N such round trips (after one untimed one)
// and reports n, median_us, p90_us, min_us and max_us; the sender reports how many it echoed.
//
// JSON lines go to stdout, or to stderr when -o - sends the received bytes to stdout.
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/pion/stun/v2"
	"github.com/quic-go/quic-go"

	"github.com/p2phttp/p2phttp/internal/meter"
	"github.com/p2phttp/p2phttp/internal/pingpong"
)

const (
	alpn = "quicperf"
	// punchMsg marks a punch datagram. Its first byte has the QUIC fixed bit clear, so quic-go drops punches that
	// reach it after it has taken over the socket.
	punchMsg      = "\x00quicperf-punch"
	punchInterval = 20 * time.Millisecond
	stunRetry     = 250 * time.Millisecond
)

type options struct {
	role, stunAddr, peer, bind, file, out string
	bytes                                 int64
	timeout                               time.Duration
	rr, size                              int // round trips of size-byte messages instead of a transfer (rr > 0)
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "send (listen, serve the bytes) or recv (dial, read them)")
	flag.StringVar(&o.stunAddr, "stun", "", "STUN server `HOST:PORT` that tells this peer its public address")
	flag.StringVar(&o.peer, "peer", "", "the peer's public `ADDR`; empty reads it as one line from stdin")
	flag.StringVar(&o.bind, "bind", "0.0.0.0:0", "local UDP `ADDR`")
	flag.StringVar(&o.file, "file", "", "sender: send this `FILE` (default: -bytes pseudo-random bytes)")
	flag.Int64Var(&o.bytes, "bytes", 32<<20, "sender: how many pseudo-random bytes to send when -file is empty")
	flag.StringVar(&o.out, "o", "", "receiver: write the bytes to `FILE` (- for stdout; default: discard)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	flag.IntVar(&o.rr, "rr", 0, "time this many request/response round trips instead of a transfer (0: transfer)")
	flag.IntVar(&o.size, "size", 100, "with -rr: bytes of each message and of its echo")
	flag.Parse()
	report := json.NewEncoder(os.Stdout)
	if o.out == "-" {
		report = json.NewEncoder(os.Stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := run(ctx, o, report); err != nil {
		_ = report.Encode(map[string]string{"event": "error", "error": err.Error()})
		os.Exit(1)
	}
}

// result is the final report line.
type result struct {
	Event      string  `json:"event"` // "done"
	Role       string  `json:"role"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	MaxGap     float64 `json:"max_gap_seconds,omitempty"` // receiver: longest wait between two arrivals
	SHA256     string  `json:"sha256,omitempty"`
	Handshake  float64 `json:"handshake_seconds"`
	Peer       string  `json:"peer"`
}

func run(ctx context.Context, o options, report *json.Encoder) error {
	if o.role != "send" && o.role != "recv" {
		return errors.New("-role must be send or recv")
	}
	if o.stunAddr == "" && o.peer == "" {
		return errors.New("need -stun (to learn the public address) or -peer")
	}
	if o.rr < 0 || (o.rr > 0 && (o.size < 1 || o.size > pingpong.MaxSize)) {
		return fmt.Errorf("-rr must not be negative, and -size must be 1-%d", pingpong.MaxSize)
	}
	laddr, err := net.ResolveUDPAddr("udp4", o.bind)
	if err != nil {
		return err
	}
	conn, err := net.ListenUDP("udp4", laddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if o.stunAddr != "" {
		mapped, err := stunMapped(ctx, conn, o.stunAddr)
		if err != nil {
			return fmt.Errorf("STUN: %w", err)
		}
		if err := report.Encode(map[string]string{"event": "mapped", "addr": mapped.String()}); err != nil {
			return err
		}
	}
	peerText := o.peer
	if peerText == "" {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading the peer's address from stdin: %w", err)
		}
		peerText = strings.TrimSpace(line)
	}
	peer, err := net.ResolveUDPAddr("udp4", peerText)
	if err != nil {
		return fmt.Errorf("peer address %q: %w", peerText, err)
	}
	if o.role == "send" {
		return send(ctx, o, conn, peer, report)
	}
	return recv(ctx, o, conn, peer, report)
}

// stunMapped asks the STUN server for the address conn is seen from, retrying lost requests.
func stunMapped(ctx context.Context, conn *net.UDPConn, server string) (*net.UDPAddr, error) {
	srv, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		return nil, err
	}
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	buf := make([]byte, 1500)
	defer conn.SetReadDeadline(time.Time{})
	for ctx.Err() == nil {
		if _, err := conn.WriteTo(req.Raw, srv); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(stunRetry))
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				break // timeout: ask again
			}
			if !from.IP.Equal(srv.IP) || !stun.IsMessage(buf[:n]) {
				continue
			}
			resp := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if err := resp.Decode(); err != nil || resp.TransactionID != req.TransactionID {
				continue
			}
			var xor stun.XORMappedAddress
			if err := xor.GetFrom(resp); err != nil {
				return nil, err
			}
			return &net.UDPAddr{IP: xor.IP, Port: xor.Port}, nil
		}
	}
	return nil, ctx.Err()
}

func send(ctx context.Context, o options, conn *net.UDPConn, peer *net.UDPAddr, report *json.Encoder) error {
	var src io.Reader
	if o.file != "" {
		f, err := os.Open(o.file)
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	} else {
		src = io.LimitReader(mrand.NewChaCha8([32]byte{'q', 'u', 'i', 'c'}), o.bytes)
	}
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	tr := &quic.Transport{Conn: conn}
	defer tr.Close()
	ln, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn}}, nil)
	if err != nil {
		return err
	}
	defer ln.Close()
	// Open our NAT towards the peer (and keep doing so) until its connection arrives.
	start := time.Now()
	punchCtx, stopPunching := context.WithCancel(ctx)
	defer stopPunching()
	go func() {
		t := time.NewTicker(punchInterval)
		defer t.Stop()
		for {
			_, _ = tr.WriteTo([]byte(punchMsg), peer)
			select {
			case <-punchCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	qc, err := ln.Accept(ctx)
	stopPunching()
	if err != nil {
		return fmt.Errorf("waiting for the peer's connection: %w", err)
	}
	handshake := time.Since(start)
	st, err := qc.AcceptStream(ctx)
	if err != nil {
		return err
	}
	if o.rr > 0 {
		n, err := pingpong.Echo(st, o.size)
		if err != nil {
			return err
		}
		_ = st.Close()
		return report.Encode(map[string]any{"event": "done", "role": "send", "echoed": n,
			"handshake_seconds": handshake.Seconds(), "peer": qc.RemoteAddr().String()})
	}
	var hello [1]byte
	if _, err := io.ReadFull(st, hello[:]); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	first := time.Now()
	n, err := io.Copy(st, src)
	if err != nil {
		return fmt.Errorf("sending after %d bytes: %w", n, err)
	}
	elapsed := time.Since(first)
	if err := st.Close(); err != nil {
		return err
	}
	// The receiver closes the connection once it has every byte; until then ours may still need retransmitting.
	select {
	case <-qc.Context().Done():
	case <-ctx.Done():
		return fmt.Errorf("the receiver did not close the connection: %w", ctx.Err())
	}
	return report.Encode(result{Event: "done", Role: "send", Bytes: n, Seconds: elapsed.Seconds(),
		CPUSeconds: cpuSeconds(), Handshake: handshake.Seconds(), Peer: qc.RemoteAddr().String()})
}

func recv(ctx context.Context, o options, conn *net.UDPConn, peer *net.UDPAddr, report *json.Encoder) error {
	var dst io.Writer = io.Discard
	switch o.out {
	case "":
	case "-":
		dst = os.Stdout
	default:
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		defer f.Close()
		dst = f
	}
	start := time.Now()
	from, err := punch(ctx, conn, peer)
	if err != nil {
		return err
	}
	tr := &quic.Transport{Conn: conn}
	defer tr.Close()
	qc, err := tr.Dial(ctx, from, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}}, nil)
	if err != nil {
		return fmt.Errorf("dialling %v: %w", from, err)
	}
	handshake := time.Since(start)
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	if o.rr > 0 {
		return roundTrips(o, qc, st, handshake, report)
	}
	if _, err := st.Write([]byte{1}); err != nil {
		return err
	}
	m := meter.New()
	if n, err := io.Copy(io.MultiWriter(dst, m), st); err != nil {
		return fmt.Errorf("receiving after %d bytes: %w", n, err)
	}
	_ = qc.CloseWithError(0, "done")
	s := m.Snapshot()
	return report.Encode(result{Event: "done", Role: "recv", Bytes: s.Bytes, Seconds: s.Duration().Seconds(),
		CPUSeconds: cpuSeconds(), MaxGap: s.MaxGap.Seconds(), SHA256: hex.EncodeToString(s.SHA256[:]),
		Handshake: handshake.Seconds(), Peer: qc.RemoteAddr().String()})
}

// rrResult is the receiver's report with -rr.
type rrResult struct {
	Event string `json:"event"` // "done"
	Role  string `json:"role"`
	pingpong.Result
	Handshake float64 `json:"handshake_seconds"`
	Peer      string  `json:"peer"`
}

// roundTrips times o.rr round trips over st (after one untimed one), ends the stream and waits for the sender's
// end of it, so the sender's echo loop ends cleanly before the connection closes.
func roundTrips(o options, qc *quic.Conn, st *quic.Stream, handshake time.Duration, report *json.Encoder) error {
	roundTrip, err := pingpong.Client(st, o.size)
	if err != nil {
		return err
	}
	if err := roundTrip(); err != nil {
		return fmt.Errorf("first round trip: %w", err)
	}
	res, err := pingpong.Time(o.rr, roundTrip)
	if err != nil {
		return err
	}
	_ = st.Close()
	_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, st)
	_ = qc.CloseWithError(0, "done")
	return report.Encode(rrResult{Event: "done", Role: "recv", Result: res, Handshake: handshake.Seconds(), Peer: qc.RemoteAddr().String()})
}

// punch sends punches to peer until one of the peer's arrives, and returns the address it came from (the
// peer's NAT may map differently from what its STUN answer said, as ICE's peer-reflexive candidates allow).
func punch(ctx context.Context, conn *net.UDPConn, peer *net.UDPAddr) (*net.UDPAddr, error) {
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		if _, err := conn.WriteToUDP([]byte(punchMsg), peer); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(punchInterval))
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == punchMsg {
				return from, nil
			}
		}
	}
	return nil, fmt.Errorf("punching to %v: %w", peer, ctx.Err())
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// selfSigned makes a throwaway certificate: the benchmark measures transport, and the receiver skips
// verification as both ends are ours.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"quicperf"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
