package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// On Linux the engine's timer is a timerfd, which is exact.
func TestLinuxWakeTimerIsExact(t *testing.T) {
	wt := newWakeTimer(func() {})
	defer wt.close()
	require.IsType(t, &fdTimer{}, wt)
	require.True(t, wt.exact())
}
