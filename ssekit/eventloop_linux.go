package ssekit

import (
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// hangups is a hub's watch of its detached streams' connections for the
// client's hang-up: one epoll set and one goroutine for all of them,
// where watch would park a goroutine in Read per stream. A client sends
// nothing after its GET, so the set asks for readability and the peer's
// close (EPOLLIN, EPOLLRDHUP; errors and hang-ups come unasked): whichever
// comes, the stream ends, as it does when watch's Read returns. The
// runtime's own poller watches the same sockets for the streams' writes;
// an epoll set of our own leaves that one alone.
//
// The goroutine runs while the set watches some connection: the first
// watch starts it, counted in the hub's WaitGroup (the caller's stream is
// counted already, so Shutdown's Wait cannot have returned), and it
// returns, closing the set, once the last one is forgotten — so that
// Shutdown, which ends every stream, waits for it too, and a hub without
// detached streams has none.
//
// Entries are keyed by a number never reused rather than by descriptor:
// an event the goroutine read for a stream that has ended meanwhile
// names a key that is gone, never the connection that took the
// descriptor over. And a stream leaves the set (forget) before its
// connection is closed.
type hangups struct {
	mu      sync.Mutex
	running bool
	epfd    int // the epoll set, while running
	kick    int // an eventfd in the set (key 0): wakes the goroutine to look at watched
	watched map[uint64]*eventStream
	last    uint64 // the last key given out
}

// watch adds es.conn to the set. It reports false when the connection has
// no socket of its own to watch (a TLS connection, a net.Pipe) or the set
// cannot take it: the caller then watches it with a goroutine.
func (hs *hangups) watch(es *eventStream, wg *sync.WaitGroup) bool {
	sc, ok := es.conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if !hs.running && hs.start(wg) != nil {
		return false
	}
	hs.last++
	key := hs.last
	var added error
	err = raw.Control(func(fd uintptr) {
		// One-shot: the first event is the last the stream needs.
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
		added = unix.EpollCtl(hs.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		es.fd = int(fd)
	})
	if err != nil || added != nil {
		hs.kickIfEmpty()
		return false
	}
	es.key = key
	if _, plain := es.conn.(*net.TCPConn); plain {
		es.try = newTryWriter(raw)
	}
	hs.watched[key] = es
	return true
}

// forget takes es out of the set, unless its hang-up took it out already;
// the caller closes its connection after.
func (hs *hangups) forget(es *eventStream) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.watched[es.key] != es {
		return
	}
	hs.remove(es)
	hs.kickIfEmpty()
}

// remove takes es out of the set; hs.mu is held.
func (hs *hangups) remove(es *eventStream) {
	delete(hs.watched, es.key)
	// The descriptor is open: its stream closes it only after forget.
	_ = unix.EpollCtl(hs.epfd, unix.EPOLL_CTL_DEL, es.fd, nil)
}

// kickIfEmpty wakes the goroutine to return when the set watches nothing
// any more; hs.mu is held.
func (hs *hangups) kickIfEmpty() {
	if hs.running && len(hs.watched) == 0 {
		var one = [8]byte{1}
		_, _ = unix.Write(hs.kick, one[:])
	}
}

// start makes the set and starts its goroutine; hs.mu is held.
func (hs *hangups) start(wg *sync.WaitGroup) error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	kick, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, kick, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		unix.Close(kick)
		unix.Close(epfd)
		return err
	}
	hs.running, hs.epfd, hs.kick = true, epfd, kick
	hs.watched = make(map[uint64]*eventStream)
	wg.Add(1)
	go hs.run(epfd, kick, wg)
	return nil
}

// run tells the streams whose clients hang up, until the set watches
// nothing; then it closes the set and returns. It blocks in epoll_wait,
// a system call, so it holds an OS thread of its own while it waits.
func (hs *hangups) run(epfd, kick int, wg *sync.WaitGroup) {
	defer wg.Done()
	events := make([]unix.EpollEvent, 128)
	var gone []*eventStream
	for {
		n, err := unix.EpollWait(epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// EBADF, EFAULT, EINVAL: the set or the buffer is not what
			// this file made them, a bug rather than a condition to live
			// with (every stream would then outlive its client).
			panic(fmt.Sprintf("ssekit: epoll_wait: %v", err))
		}
		hs.mu.Lock()
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if key == 0 {
				var b [8]byte
				_, _ = unix.Read(kick, b[:])
				continue
			}
			if es := hs.watched[key]; es != nil {
				hs.remove(es)
				gone = append(gone, es)
			}
		}
		done := len(hs.watched) == 0
		if done {
			hs.running, hs.watched = false, nil
			unix.Close(kick)
			unix.Close(epfd)
		}
		hs.mu.Unlock()
		// Outside the lock: a wake-up may start a step, which may end its
		// stream and forget it.
		for i, es := range gone {
			es.hungUp()
			gone[i] = nil
		}
		gone = gone[:0]
		if done {
			return
		}
	}
}

// tryWriter writes to a socket without waiting for it: what the socket's
// buffer takes at once, through the runtime's poller's own descriptor
// (syscall.RawConn), so that its write lock and deadline still hold.
type tryWriter struct {
	raw syscall.RawConn
	do  func(fd uintptr) bool // writeFD, made once: a method value allocates
	p   []byte
	n   int
	err error
}

func newTryWriter(raw syscall.RawConn) *tryWriter {
	tw := &tryWriter{raw: raw}
	tw.do = tw.writeFD
	return tw
}

// write writes what of p the socket takes now and returns how much; it
// never waits for the socket to take more.
func (tw *tryWriter) write(p []byte) (int, error) {
	tw.p, tw.n, tw.err = p, 0, nil
	err := tw.raw.Write(tw.do)
	n := tw.n
	if err == nil {
		err = tw.err
	}
	tw.p, tw.err = nil, nil
	return n, err
}

// writeFD is raw.Write's callback: true, always, so that Write never
// waits for the socket to be writable; a full buffer (EAGAIN) writes
// nothing and is no error.
func (tw *tryWriter) writeFD(fd uintptr) bool {
	for tw.n < len(tw.p) {
		n, err := unix.Write(int(fd), tw.p[tw.n:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return true
		case err != nil:
			tw.err = err
			return true
		}
		tw.n += n
	}
	return true
}
