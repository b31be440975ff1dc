package engine_test

import (
	"context"
	"fmt"
	"io"

	"github.com/p2phttp/p2phttp/transport/utp/internal/engine"
)

// chanLink carries datagrams to another endpoint through a queue, as a path
// would; a goroutine delivers them, never the sender's own call.
type chanLink struct{ out chan []byte }

func (l chanLink) WriteDatagrams(bufs [][]byte) error {
	for _, b := range bufs {
		select {
		case l.out <- append([]byte(nil), b...): // the engine reuses b
		default: // a full queue drops, as a network does
		}
	}
	return nil
}

func (l chanLink) DatagramSizes() (safe, max int) { return 1200, 1400 }

func deliver(ch chan []byte, ep *engine.Endpoint) {
	for b := range ch {
		ep.DeliverDatagram(b)
	}
}

func Example() {
	aToB, bToA := make(chan []byte, 1024), make(chan []byte, 1024)
	a := engine.NewEndpoint(chanLink{aToB}, engine.Config{})
	b := engine.NewEndpoint(chanLink{bToA}, engine.Config{})
	defer a.Close()
	defer b.Close()
	go deliver(aToB, b)
	go deliver(bToA, a)

	go func() {
		c, err := b.Accept(context.Background())
		if err != nil {
			return
		}
		msg, _ := io.ReadAll(c) // until the dialler's CloseWrite
		c.Write([]byte("got " + string(msg)))
		c.Close()
	}()

	c, err := a.Dial(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Write([]byte("hello"))
	c.CloseWrite()
	reply, err := io.ReadAll(c)
	fmt.Println(string(reply), err)
	c.Close()
	// Output: got hello <nil>
}
