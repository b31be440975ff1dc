package signal

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateNameplate(t *testing.T) {
	for _, s := range []string{"1", "7", "42", "999", "1000", "99999"} {
		assert.NoError(t, ValidateNameplate(s), "ValidateNameplate(%q)", s)
	}
	for _, s := range []string{"", "0", "007", "100000", "-1", "1a", " 1", "1 ", "１", "99999999999999999999"} {
		assert.ErrorIs(t, ValidateNameplate(s), ErrBadNameplate, "ValidateNameplate(%q)", s)
	}
}

func TestValidateIDs(t *testing.T) {
	id := NewPeerID()
	require.NoError(t, ValidatePeerID(id), "NewPeerID %q", id)
	require.NoError(t, ValidateMeetingID(NewMeetingID()))
	require.NotEqual(t, id, NewPeerID(), "two NewPeerID calls returned the same ID")
	for _, s := range []string{"", strings.ToUpper(id), id[:31], id + "0", strings.Repeat("g", 32)} {
		assert.ErrorIs(t, ValidatePeerID(s), ErrBadPeerID, "ValidatePeerID(%q)", s)
		assert.ErrorIs(t, ValidateMeetingID(s), ErrBadMeetingID, "ValidateMeetingID(%q)", s)
	}
}

func TestValidateMessage(t *testing.T) {
	body := []byte("x")
	for _, tc := range []struct {
		seq  int
		body []byte
		ok   bool
	}{
		{0, body, true},
		{DefaultMaxMessages - 1, make([]byte, MaxMessageBytes), true},
		{-1, body, false},
		{DefaultMaxMessages, body, false},
		{0, nil, false},
		{0, make([]byte, MaxMessageBytes+1), false},
	} {
		err := ValidateMessage(tc.seq, tc.body, DefaultMaxMessages)
		if tc.ok {
			assert.NoError(t, err, "ValidateMessage(%d, %d bytes)", tc.seq, len(tc.body))
		} else {
			assert.ErrorIs(t, err, ErrBadEnvelope, "ValidateMessage(%d, %d bytes)", tc.seq, len(tc.body))
		}
	}
}

func TestExpandPath(t *testing.T) {
	for _, tc := range []struct{ pattern, value, want string }{
		{HostPath, "7", "/v2/nameplates/7/host"},
		{GuestPath, "99999", "/v2/nameplates/99999/guest"},
		{ReleasePath, "12", "/v2/nameplates/12/release"},
		{SendPath, "ab", "/v2/meetings/ab/send"},
		{RecvPath, "ab", "/v2/meetings/ab/recv"},
		{ClosePath, "ab", "/v2/meetings/ab/close"},
		{HealthzPath, "x", "/healthz"},
	} {
		assert.Equal(t, tc.want, ExpandPath(tc.pattern, tc.value), "ExpandPath(%q, %q)", tc.pattern, tc.value)
	}
}
