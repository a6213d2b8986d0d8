package bench

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times: 100 on every Linux architecture Go
// supports.
const clockTicks = 100

// OtherCPU measures how much of the machine's CPU went to processes outside this one's
// process tree (the control plane, the webhook and kubectl are children of it): the
// figures of a run are only comparable when that is small.
type OtherCPU struct {
	mu              sync.Mutex
	lastTotal       float64 // busy CPU seconds of the machine
	lastOurs        map[int]process
	otherSec, wallS float64
	last            time.Time
	stop            chan struct{}
	done            chan struct{}
}

// StartOtherCPU samples every interval until Stop.
func StartOtherCPU(interval time.Duration) *OtherCPU {
	o := &OtherCPU{stop: make(chan struct{}), done: make(chan struct{})}
	o.lastTotal, o.lastOurs, o.last = machineBusy(), ourTree(), time.Now()
	go func() {
		defer close(o.done)
		for {
			select {
			case <-o.stop:
				o.sample()
				return
			case <-time.After(interval):
				o.sample()
			}
		}
	}()
	return o
}

func (o *OtherCPU) sample() {
	total, ours, now := machineBusy(), ourTree(), time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	oursDelta := 0.0
	for pid, t := range ours {
		oursDelta += t.sec - o.lastOurs[pid].sec // a new process counts from 0
	}
	if d := (total - o.lastTotal) - oursDelta; d > 0 {
		o.otherSec += d
	}
	o.wallS += now.Sub(o.last).Seconds()
	o.lastTotal, o.lastOurs, o.last = total, ours, now
}

// Stop ends the sampling and returns the average share of all cores that other processes
// used, 0 to 1.
func (o *OtherCPU) Stop(cores int) float64 {
	close(o.stop)
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.wallS == 0 {
		return 0
	}
	return o.otherSec / (o.wallS * float64(cores))
}

// machineBusy is the machine's busy CPU time in seconds, from /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	busy := 0.0
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return busy / clockTicks
}

// Who treeCPU counts CPU time for.
const (
	cpuAPIServer = "kube-apiserver"
	cpuEtcd      = "etcd"
	cpuBinary    = "the binary"
	cpuOthers    = "this process" // and any other descendant
)

// treeCPU returns the CPU seconds (user+system) of this process and its descendants, summed
// by who they are: kube-apiserver and etcd (by command name), the binary (by pid), the rest.
func treeCPU(binary int) map[string]float64 {
	out := map[string]float64{}
	for pid, p := range ourTree() {
		who := cpuOthers
		switch {
		case pid == binary:
			who = cpuBinary
		case p.comm == cpuAPIServer || p.comm == cpuEtcd:
			who = p.comm
		}
		out[who] += p.sec
	}
	return out
}

// perWrite is the CPU time per write of each of treeCPU's names from a to b over n writes.
func perWrite(a, b map[string]float64, n int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, sec := range b {
		out[name] = time.Duration((sec - a[name]) / float64(n) * float64(time.Second))
	}
	return out
}

// process is what ourTree reads of a process from /proc/<pid>/stat: its command name and its
// CPU seconds (user+system).
type process struct {
	comm string
	sec  float64
}

// ourTree returns this process and its descendants, by pid.
func ourTree() map[int]process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	procs := map[int]process{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command may hold spaces and parentheses: fields start after the last ')'.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		parent[pid], procs[pid] = ppid, process{comm: s[open+1 : end], sec: (ut + st) / clockTicks}
	}
	self := os.Getpid()
	ours := map[int]process{}
	for pid := range procs {
		for p, hops := pid, 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if p == self {
				ours[pid] = procs[pid]
				break
			}
		}
	}
	return ours
}
