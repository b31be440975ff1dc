package symhttp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/symsock"
	"github.com/stretchr/testify/require"
)

// Client concurrency: 20 GETs fired at once by 20 goroutines, through the library's two clients, against a symsock
// server on loopback TCP whose handler takes serviceTime per request (a peer that reads a file or asks a local web
// server). NewRoundTripper runs them one after the other on its one socket; NewTransport runs each on a stream of
// its own. One op is the whole burst of 20. Run with
//
//	go test -run '^$' -bench ClientBurst -benchtime 20x ./symsock/symhttp/
//
// Both variants run in the same process on the same server, so compare their ns/op side by side.

const (
	burstRequests = 20
	serviceTime   = 5 * time.Millisecond
	burstBodySize = 64 << 10
)

func BenchmarkClientBurst(b *testing.B) {
	body := strings.Repeat("b", burstBodySize)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(serviceTime)
		io.WriteString(w, body)
	})
	srv := startSymsockServerFunc(b, func(s *symsock.Socket) error { return Serve(s, h) })
	u, err := url.Parse(srv.URL)
	require.NoError(b, err)
	var d net.Dialer
	dial := func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", u.Host) }

	b.Run("sequential-RoundTripper", func(b *testing.B) {
		conn, err := dial(context.Background())
		require.NoError(b, err)
		s := symsock.New(conn)
		defer s.Close()
		burst(b, &http.Client{Transport: NewRoundTripper(s)})
	})
	b.Run("concurrent-Transport", func(b *testing.B) {
		tr := NewTransport(dial)
		defer tr.CloseIdleConnections()
		burst(b, &http.Client{Transport: tr})
	})
}

// burst runs b.N bursts of burstRequests concurrent GETs and reports the time per request too.
func burst(b *testing.B, client *http.Client) {
	b.SetBytes(burstRequests * burstBodySize)
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		errs := make(chan error, burstRequests)
		for i := range burstRequests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := client.Get(fmt.Sprintf("http://peer/%d", i))
				if err != nil {
					errs <- err
					return
				}
				n, err := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err == nil && n != burstBodySize {
					err = fmt.Errorf("%d body bytes", n)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*burstRequests), "µs/request")
}
