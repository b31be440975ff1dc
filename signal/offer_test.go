package signal

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeOffer: decoding never panics, every failure is ErrBadOffer, and
// an accepted offer survives a JSON round trip unchanged (so the MAC a peer
// computes over it is the MAC the other peer checks).
func FuzzDecodeOffer(f *testing.F) {
	f.Add([]byte(rawOffer(1)))
	f.Add([]byte(strings.Replace(rawOffer(1), `127.0.0.1:1001`, `[2001:db8::1]:9`, 1)))
	f.Add([]byte(`{"version":1,"peer_id":"","candidates":null,"mac":null}`))
	f.Add([]byte(`{"candidates":[{"kind":"srflx","addr":"[::ffff:1.2.3.4]:5"}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"version":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := decodeOffer(data, DefaultMaxCandidates)
		if err != nil {
			if !errors.Is(err, ErrBadOffer) {
				t.Fatalf("error %v is not ErrBadOffer", err)
			}
			return
		}
		again, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		o2, err := decodeOffer(again, DefaultMaxCandidates)
		if err != nil {
			t.Fatalf("re-encoded offer rejected: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(o, o2) {
			t.Fatalf("round trip changed the offer:\n%+v\n%+v", o, o2)
		}
		key := make([]byte, 32)
		if string(offerMAC(key, "r", &o)) != string(offerMAC(key, "r", &o2)) {
			t.Fatal("MAC differs after a round trip")
		}
	})
}
