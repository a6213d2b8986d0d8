package harness

import (
	"fmt"
	"net"
	"testing"
)

// TestFreePortBelowTheEphemeralRange: the port FreePort gives can be listened on, and lies
// below the kernel's ephemeral range, which outgoing connections take their ports from.
func TestFreePortBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if low > minPort+1000 && (port < minPort || port >= low) {
			t.Fatalf("FreePort() = %d, want in [%d, %d)", port, minPort, low)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("port %d is not free: %v", port, err)
		}
		_ = l.Close()
	}
}

// TestFreePortsDistinct: FreePorts gives distinct ports, none of those it is told are taken.
func TestFreePortsDistinct(t *testing.T) {
	taken, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		ports, err := FreePorts(50, taken)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{taken: true}
		for _, p := range ports {
			if seen[p] {
				t.Fatalf("FreePorts(50, %d) = %v: %d twice or taken", taken, ports, p)
			}
			seen[p] = true
		}
	}
}
