package utp

import (
	"errors"
	"testing"
)

// Small assertion helpers (the module's testify needs go.sum entries this checkout lacks).

func noErr(t testing.TB, err error, what ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%v: unexpected error: %v", what, err)
	}
}

func isErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want one matching %v", err, target)
	}
}

func equal[T comparable](t testing.TB, got, want T, what ...any) {
	t.Helper()
	if got != want {
		t.Fatalf("%v: got %v, want %v", what, got, want)
	}
}

func check(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}
