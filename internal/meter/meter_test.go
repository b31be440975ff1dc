package meter

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

func TestMeterCountsHashesAndTimes(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	m := New()
	if s := m.Snapshot(); s.Bytes != 0 || !s.First.IsZero() || s.Rate() != 0 {
		t.Fatalf("empty meter: %+v", s)
	}
	before := time.Now()
	n, err := io.Copy(m, iotest.OneByteReader(bytes.NewReader(data[:10])))
	if err != nil || n != 10 {
		t.Fatalf("copy: %d, %v", n, err)
	}
	time.Sleep(30 * time.Millisecond)
	if _, err := m.Write(data[10:]); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(nil); err != nil {
		t.Fatal(err)
	}
	s := m.Snapshot()
	if s.Bytes != int64(len(data)) || s.SHA256 != sha256.Sum256(data) {
		t.Fatalf("got %d bytes hashing to %x, want %d bytes hashing to %x", s.Bytes, s.SHA256, len(data), sha256.Sum256(data))
	}
	if s.First.Before(before) || s.Last.Before(s.First) {
		t.Fatalf("first %v last %v, copy started %v", s.First, s.Last, before)
	}
	if s.MaxGap < 30*time.Millisecond || s.MaxGap > s.Duration() {
		t.Fatalf("max gap %v, want at least the 30ms pause and at most the whole %v", s.MaxGap, s.Duration())
	}
	if s.Rate() <= 0 {
		t.Fatalf("rate %v", s.Rate())
	}
}
