package meter

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMeterCountsHashesAndTimes(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	m := New()
	empty := m.Snapshot()
	require.Zero(t, empty.Bytes, "empty meter: %+v", empty)
	require.True(t, empty.First.IsZero(), "empty meter: %+v", empty)
	require.Zero(t, empty.Rate(), "empty meter: %+v", empty)
	before := time.Now()
	n, err := io.Copy(m, iotest.OneByteReader(bytes.NewReader(data[:10])))
	require.NoError(t, err)
	require.Equal(t, int64(10), n)
	time.Sleep(30 * time.Millisecond)
	_, err = m.Write(data[10:])
	require.NoError(t, err)
	_, err = m.Write(nil)
	require.NoError(t, err)
	s := m.Snapshot()
	require.Equal(t, int64(len(data)), s.Bytes)
	require.Equal(t, sha256.Sum256(data), s.SHA256)
	require.False(t, s.First.Before(before), "first %v, copy started %v", s.First, before)
	require.False(t, s.Last.Before(s.First), "first %v last %v", s.First, s.Last)
	require.GreaterOrEqual(t, s.MaxGap, 30*time.Millisecond, "max gap, want at least the 30ms pause")
	require.LessOrEqual(t, s.MaxGap, s.Duration(), "max gap, want at most the whole duration")
	require.Positive(t, s.Rate())
}
