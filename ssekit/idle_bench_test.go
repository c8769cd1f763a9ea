package ssekit_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssekit/sse/ssekit"
)

// BenchmarkIdleStreams measures what an idle detached stream holds on the
// server: it opens SSEKIT_IDLE_STREAMS (default 2,000) loopback streams
// to a hub with DetachStreams, one user each, and reports per stream the
// growth of the live heap and of the goroutine stacks (runtime.MemStats
// after a GC), of the process's RSS (without a forced GC, read 3 s after
// the last connect, as ssebench reads a server's), and of the goroutine
// count. The clients run in a child process (this test binary, see
// TestIdleClients) so that their own memory is not counted and the
// descriptors of 18,000 streams fit under a 20,000 limit on each side:
//
//	SSEKIT_IDLE_STREAMS=18000 go test -run '^$' -bench IdleStreams -benchtime 1x ./ssekit
func BenchmarkIdleStreams(b *testing.B) {
	n := 2000
	if v := os.Getenv("SSEKIT_IDLE_STREAMS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("SSEKIT_IDLE_STREAMS=%q", v)
		}
	}
	for b.Loop() {
		idleStreams(b, n)
	}
}

func idleStreams(b *testing.B, n int) {
	hub, err := ssekit.New(ssekit.Config{MaxClients: -1, MaxClientsPerUser: -1, BufferSize: 1024, DetachStreams: true})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: hub.Handler(ssekit.HandlerOptions{Authenticate: headerUser})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	defer func() {
		hub.Close()
		srv.Close()
		<-served
	}()

	before := serverMemory()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestIdleClients$")
	cmd.Env = append(os.Environ(), "SSEKIT_IDLE_CLIENTS="+ln.Addr().String()+" "+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close() // the clients hang up
		_ = cmd.Wait()
		// Then the server sees them go: wait for every stream to end.
		for deadline := time.Now().Add(30 * time.Second); hub.GetTotalClientCount() > 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		b.Fatalf("clients: %q, %v", line, err)
	}
	for deadline := time.Now().Add(10 * time.Second); hub.GetTotalClientCount() < n; {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d streams registered", hub.GetTotalClientCount(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // as ssebench's -idle-wait
	after := serverMemory()
	if path := os.Getenv("SSEKIT_IDLE_HEAPPROFILE"); path != "" {
		// What the idle streams hold, by allocation site.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	b.ReportMetric(per(after.rss, before.rss)/1024, "rss-KiB/stream")
	b.ReportMetric(per(after.heap, before.heap)/1024, "heap-KiB/stream")
	b.ReportMetric(per(after.stack, before.stack)/1024, "stack-KiB/stream")
	b.ReportMetric(per(after.goroutines, before.goroutines), "goroutines/stream")
}

type memory struct{ rss, heap, stack, goroutines uint64 }

// serverMemory reads the process's RSS first (from /proc; 0 elsewhere),
// then, after a GC, its live heap and stacks.
func serverMemory() memory {
	var m memory
	if statm, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(statm)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			m.rss = pages * uint64(os.Getpagesize())
		}
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heap, m.stack = ms.HeapAlloc, ms.StackInuse
	m.goroutines = uint64(runtime.NumGoroutine())
	return m
}

// TestIdleClients is BenchmarkIdleStreams's client process: given
// SSEKIT_IDLE_CLIENTS="<addr> <n>", it opens n streams to addr from
// 127.0.0.2–5 (so that ephemeral ports do not run out), reads each up to
// its connected event, says "ready" and holds them, reading nothing more,
// until its stdin closes; then it resets them (no TIME_WAIT). Skipped
// otherwise.
func TestIdleClients(t *testing.T) {
	spec := strings.Fields(os.Getenv("SSEKIT_IDLE_CLIENTS"))
	if len(spec) != 2 {
		t.Skip("BenchmarkIdleStreams's client process")
	}
	addr := spec[0]
	n, _ := strconv.Atoi(spec[1])
	conns := make([]*net.TCPConn, n)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				c, err := openIdle(addr, i)
				if err != nil {
					select {
					case errs <- fmt.Errorf("stream %d: %w", i, err):
					default:
					}
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.SetLinger(0)
				c.Close()
			}
		}
	}()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func openIdle(addr string, i int) (*net.TCPConn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%4))}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := nc.(*net.TCPConn)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-User: u%d\r\n\r\n", i)
	r := bufio.NewReaderSize(c, 512)
	for found := false; ; {
		line, err := r.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		found = found || strings.HasPrefix(line, "event: connected")
		if found && line == "\n" {
			break
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
