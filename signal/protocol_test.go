package signal

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateNameplate(t *testing.T) {
	for _, s := range []string{"1", "7", "42", "999", "1000", "99999"} {
		if err := ValidateNameplate(s); err != nil {
			t.Errorf("ValidateNameplate(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range []string{"", "0", "007", "100000", "-1", "1a", " 1", "1 ", "１", "99999999999999999999"} {
		if err := ValidateNameplate(s); !errors.Is(err, ErrBadNameplate) {
			t.Errorf("ValidateNameplate(%q) = %v, want ErrBadNameplate", s, err)
		}
	}
}

func TestValidateIDs(t *testing.T) {
	id := NewPeerID()
	if err := ValidatePeerID(id); err != nil {
		t.Fatalf("NewPeerID %q: %v", id, err)
	}
	if err := ValidateMeetingID(NewMeetingID()); err != nil {
		t.Fatal(err)
	}
	if NewPeerID() == id {
		t.Fatal("two NewPeerID calls returned the same ID")
	}
	for _, s := range []string{"", strings.ToUpper(id), id[:31], id + "0", strings.Repeat("g", 32)} {
		if err := ValidatePeerID(s); !errors.Is(err, ErrBadPeerID) {
			t.Errorf("ValidatePeerID(%q) = %v, want ErrBadPeerID", s, err)
		}
		if err := ValidateMeetingID(s); !errors.Is(err, ErrBadMeetingID) {
			t.Errorf("ValidateMeetingID(%q) = %v, want ErrBadMeetingID", s, err)
		}
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
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadEnvelope)) {
			t.Errorf("ValidateMessage(%d, %d bytes) = %v", tc.seq, len(tc.body), err)
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
		if got := ExpandPath(tc.pattern, tc.value); got != tc.want {
			t.Errorf("ExpandPath(%q, %q) = %q, want %q", tc.pattern, tc.value, got, tc.want)
		}
	}
}
