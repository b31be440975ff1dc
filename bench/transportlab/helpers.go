//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/p2phttp/p2phttp/internal/pingpong"
)

// helpers are the subcommands the harness runs inside the lab's namespaces (and for the CPU hog). Each
// reports in JSON lines on stdout, except tcp-recv, whose stdout is the data.
var helpers = map[string]func(args []string) error{
	"tcp-send":   tcpSend,
	"tcp-recv":   tcpRecv,
	"http-serve": httpServe,
	"rr":         rr,
	"tcp-echo":   tcpEcho,
	"tcp-rr":     tcpRR,
	"hog":        hog,
}

// helperTimeout bounds every helper, so none outlives a harness that died.
const helperTimeout = 10 * time.Minute

// tcpSend accepts one TCP connection, writes the file to it with plain writes (no sendfile: the other systems
// copy through user space too) and closes it. It prints {"cc": ...} once listening.
func tcpSend(args []string) error {
	fs := flag.NewFlagSet("tcp-send", flag.ContinueOnError)
	listen := fs.String("listen", ":9100", "TCP `ADDR` to accept one connection on")
	file := fs.String("file", "", "`FILE` to send")
	cc := fs.String("cc", "", "congestion control (empty: the namespace's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	lc := net.ListenConfig{Control: setCC(*cc)}
	ln, err := lc.Listen(context.Background(), "tcp4", *listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	used, err := congestionControl(ln.(*net.TCPListener))
	if err != nil {
		return err
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]string{"event": "listening", "cc": used}); err != nil {
		return err
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(helperTimeout))
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(helperTimeout))
	for rest := data; len(rest) > 0; {
		n, err := c.Write(rest[:min(len(rest), 64<<10)])
		if err != nil {
			return err
		}
		rest = rest[n:]
	}
	return c.(*net.TCPConn).CloseWrite()
}

// tcpRecv connects and copies the stream to stdout.
func tcpRecv(args []string) error {
	fs := flag.NewFlagSet("tcp-recv", flag.ContinueOnError)
	addr := fs.String("connect", "", "`ADDR` to connect to")
	cc := fs.String("cc", "", "congestion control (empty: the namespace's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d := net.Dialer{Timeout: 30 * time.Second, Control: setCC(*cc)}
	c, err := d.Dial("tcp4", *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(helperTimeout))
	// Through a plain reader: io.Copy would splice socket to pipe, which none of the other systems can.
	_, err = io.Copy(os.Stdout, struct{ io.Reader }{c})
	return err
}

// setCC returns a socket control function that sets TCP_CONGESTION to cc (nothing when cc is empty).
func setCC(cc string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		if cc == "" {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc) }); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("setting congestion control %q: %w", cc, serr)
		}
		return nil
	}
}

// congestionControl reads the socket's TCP_CONGESTION (accepted sockets inherit the listener's).
func congestionControl(ln *net.TCPListener) (string, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return "", err
	}
	var name string
	var gerr error
	if err := rc.Control(func(fd uintptr) { name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION) }); err != nil {
		return "", err
	}
	return name, gerr
}

// httpServe serves a folder over HTTP/1.1 and prints {"event":"listening"} once it accepts.
func httpServe(args []string) error {
	fs := flag.NewFlagSet("http-serve", flag.ContinueOnError)
	listen := fs.String("listen", ":9101", "TCP `ADDR`")
	dir := fs.String("dir", ".", "`DIR` to serve")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]string{"event": "listening"}); err != nil {
		return err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(*dir)), ReadHeaderTimeout: 30 * time.Second}
	time.AfterFunc(helperTimeout, func() { srv.Close() })
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// rr times n sequential GETs of url over one keep-alive connection, after one untimed request that sets the
// connection up (retried until connectTimeout, as p2phttp forward may still be meeting its peer). Each body
// must be size bytes. It prints a pingpong.Result.
func rr(args []string) error {
	fs := flag.NewFlagSet("rr", flag.ContinueOnError)
	url := fs.String("url", "", "`URL` to GET")
	n := fs.Int("n", 200, "timed requests")
	size := fs.Int("size", 100, "expected body size")
	connectTimeout := fs.Duration("connect-timeout", time.Minute, "how long the first request may keep failing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true},
	}
	get := func() error {
		resp, err := client.Get(*url)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || len(body) != *size {
			return fmt.Errorf("%s: %d bytes, want %d", resp.Status, len(body), *size)
		}
		return nil
	}
	deadline := time.Now().Add(*connectTimeout)
	for {
		err := get()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("first request: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	res, err := pingpong.Time(*n, get)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// tcpEcho accepts one TCP connection and echoes size-byte messages on it until the peer ends it. It prints
// {"event":"listening"} once it accepts.
func tcpEcho(args []string) error {
	fs := flag.NewFlagSet("tcp-echo", flag.ContinueOnError)
	listen := fs.String("listen", ":9102", "TCP `ADDR` to accept one connection on")
	size := fs.Int("size", 100, "message size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	if err := json.NewEncoder(os.Stdout).Encode(map[string]string{"event": "listening"}); err != nil {
		return err
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(helperTimeout))
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(helperTimeout))
	_, err = pingpong.Echo(c, *size)
	return err
}

// tcpRR connects, makes one untimed round trip of a size-byte message and its echo, times n more and prints a
// pingpong.Result.
func tcpRR(args []string) error {
	fs := flag.NewFlagSet("tcp-rr", flag.ContinueOnError)
	addr := fs.String("connect", "", "`ADDR` to connect to")
	n := fs.Int("n", 200, "timed round trips")
	size := fs.Int("size", 100, "message size")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp4", *addr, 30*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(helperTimeout))
	roundTrip, err := pingpong.Client(c, *size)
	if err != nil {
		return err
	}
	if err := roundTrip(); err != nil {
		return fmt.Errorf("first round trip: %w", err)
	}
	res, err := pingpong.Time(*n, roundTrip)
	if err != nil {
		return err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// hog spins until killed, or until its parent (the harness) is gone: the CPU hog, pinned by taskset.
func hog([]string) error {
	parent := os.Getppid()
	x := uint64(1)
	for i := 0; ; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		if i%(1<<22) == 0 && os.Getppid() != parent {
			break
		}
	}
	if x == 0 {
		fmt.Println(x) // keeps the loop from being optimised away
	}
	return nil
}
