package pingpong

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loopbackPair returns the two ends of a kernel TCP connection over loopback.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestClientAgainstEcho(t *testing.T) {
	client, server := loopbackPair(t)
	echoed := make(chan int, 1)
	echoErr := make(chan error, 1)
	go func() {
		n, err := Echo(server, 100)
		echoed <- n
		echoErr <- err
	}()
	rt, err := Client(client, 100)
	require.NoError(t, err)
	res, err := Time(20, rt)
	require.NoError(t, err)
	assert.Equal(t, 20, res.N)
	assert.Positive(t, res.MinUS)
	assert.LessOrEqual(t, res.MinUS, res.MedianUS)
	assert.LessOrEqual(t, res.MedianUS, res.P90US)
	assert.LessOrEqual(t, res.P90US, res.MaxUS)
	require.NoError(t, client.(*net.TCPConn).CloseWrite())
	assert.Equal(t, 20, <-echoed)
	assert.NoError(t, <-echoErr)
}

// A peer that answers with other bytes than it was sent fails the round trip.
func TestClientCatchesABadEcho(t *testing.T) {
	client, server := loopbackPair(t)
	go func() {
		buf := make([]byte, 10)
		if _, err := io.ReadFull(server, buf); err == nil {
			buf[3] ^= 0xff
			server.Write(buf)
		}
	}()
	rt, err := Client(client, 10)
	require.NoError(t, err)
	_, err = Time(1, rt)
	assert.ErrorIs(t, err, ErrMismatch)
}

// A stream that ends inside a message is an error, not a clean end.
func TestEchoTornMessage(t *testing.T) {
	client, server := loopbackPair(t)
	_, err := client.Write(make([]byte, 150))
	require.NoError(t, err)
	require.NoError(t, client.(*net.TCPConn).CloseWrite())
	n, err := Echo(server, 100)
	assert.Equal(t, 1, n)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestBadArguments(t *testing.T) {
	_, err := Client(nil, 0)
	assert.Error(t, err)
	_, err = Echo(nil, MaxSize+1)
	assert.Error(t, err)
	_, err = Time(0, func() error { return nil })
	assert.Error(t, err)
}

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	assert.Equal(t, Result{}, Summarize(nil))
	assert.Equal(t, Result{N: 3, MedianUS: 2000, P90US: 3000, MinUS: 1000, MaxUS: 3000}, Summarize(ms(3, 1, 2)))
	assert.Equal(t, Result{N: 10, MedianUS: 6000, P90US: 10000, MinUS: 1000, MaxUS: 10000},
		Summarize(ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1)))
}
