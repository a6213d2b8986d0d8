package harness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
)

// Memory is a process's resident memory, from /proc/<pid>/status.
type Memory struct {
	// Peak is VmHWM, the peak resident set since the process started; Current is VmRSS.
	Peak, Current int64
}

var procMemLine = regexp.MustCompile(`^(VmHWM|VmRSS):\s+(\d+) kB`)

// ProcessMemory reads a process's resident memory.
func ProcessMemory(pid int) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if g := procMemLine.FindStringSubmatch(sc.Text()); g != nil {
			kb, _ := strconv.ParseInt(g[2], 10, 64)
			if g[1] == "VmHWM" {
				m.Peak = kb << 10
			} else {
				m.Current = kb << 10
			}
		}
	}
	if m.Peak == 0 {
		return m, errors.New("no VmHWM in /proc/<pid>/status")
	}
	return m, sc.Err()
}
