package kernel

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Why felix has its own rtnetlink route codec rather than
// vishvananda/netlink's RouteAdd/RouteListFiltered: those send one request
// and wait for one ack per route, and decode every dumped route into a large
// struct. At 64k routes that costs more than the kernel's own work; here a
// batch of thousands of routes is one sendmsg answered by one ack (errors are
// reported per message), and a dump decodes only the fields felix compares.

const (
	// maxBatchBytes bounds one sendmsg; the kernel handles the messages of
	// one sendmsg in order, synchronously.
	maxBatchBytes = 256 << 10
	sendBuffer    = 1 << 20
	// recvBuffer must hold the error replies of a whole batch in which
	// every message fails (each reply costs a full skb of buffer).
	recvBuffer  = 32 << 20
	nlmsgHdrLen = unix.SizeofNlMsghdr
	rtmsgLen    = unix.SizeofRtMsg
)

// ErrBatchLost reports a batch whose per-route results could not be read
// back (the reply queue overflowed or timed out); the routes may or may not
// have been applied, so the caller must read the kernel back.
var ErrBatchLost = errors.New("route batch result lost")

type routeSocket struct {
	mu      sync.Mutex
	inNS    func(func() error) error
	fd      int
	seq     uint32
	maxSend int
	rbuf    []byte
	wbuf    []byte
	// dumpBufs are the receive buffers a dump cycles through.
	dumpBufs [][]byte
}

func newRouteSocket(inNS func(func() error) error) (*routeSocket, error) {
	s := &routeSocket{inNS: inNS, fd: -1, rbuf: make([]byte, 1<<20)}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func setBuffer(fd, force, plain, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		// Not privileged: take what the system allows.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
}

func (s *routeSocket) open() error {
	var fd int
	err := s.inNS(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return fmt.Errorf("open rtnetlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("bind rtnetlink socket: %w", err)
	}
	// Strict checking lets the kernel filter the dump to the main table;
	// capped acks keep error replies small. Both are optimisations only.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, sendBuffer)
	setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, recvBuffer)
	tv := unix.Timeval{Sec: 30}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("set rtnetlink receive timeout: %w", err)
	}
	snd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("read rtnetlink send buffer size: %w", err)
	}
	// netlink_sendmsg refuses a message longer than sk_sndbuf-32.
	s.maxSend = min(maxBatchBytes, snd-64)
	s.fd = fd
	return nil
}

func (s *routeSocket) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// reset replaces a socket whose reply stream can no longer be trusted.
func (s *routeSocket) reset() error {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
	return s.open()
}

func (s *routeSocket) ensureOpen() error {
	if s.fd >= 0 {
		return nil
	}
	return s.open()
}

func (s *routeSocket) send(b []byte) error {
	for {
		err := unix.Sendto(s.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			return err
		}
	}
}

func (s *routeSocket) recv() ([]byte, error) {
	for {
		n, _, err := unix.Recvfrom(s.fd, s.rbuf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return s.rbuf[:n], nil
	}
}

// apply sends ops in batches; see Kernel.RouteApply.
func (s *routeSocket) apply(ops []RouteOp) []error {
	errs := make([]error, len(ops))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < len(ops); {
		if err := s.ensureOpen(); err != nil {
			for k := i; k < len(ops); k++ {
				errs[k] = err
			}
			return errs
		}
		first := s.seq + 1
		buf, last := s.wbuf[:0], 0
		j := i
		for ; j < len(ops); j++ {
			before := len(buf)
			buf = appendRouteOp(buf, &ops[j], first+uint32(j-i))
			if len(buf) > s.maxSend && j > i {
				buf = buf[:before]
				break
			}
			last = before
		}
		// Only the last message asks for an ack: the kernel answers failed
		// messages anyway, in order, so that ack closes the batch.
		native.PutUint16(buf[last+6:], native.Uint16(buf[last+6:])|unix.NLM_F_ACK)
		s.wbuf = buf
		s.seq = first + uint32(j-i) - 1
		s.applyBatch(buf, ops[i:j], errs[i:j], first)
		i = j
	}
	return errs
}

func (s *routeSocket) applyBatch(buf []byte, ops []RouteOp, errs []error, first uint32) {
	lastSeq := first + uint32(len(ops)) - 1
	fail := func(err error) {
		for k := range errs {
			if errs[k] == nil {
				errs[k] = fmt.Errorf("%s route %s: %w: %w", ops[k].Kind, ops[k].Route.Dst, ErrBatchLost, err)
			}
		}
		// Replies of this batch may still arrive: never reuse the socket.
		_ = s.reset()
	}
	if err := s.send(buf); err != nil {
		fail(fmt.Errorf("send: %w", err))
		return
	}
	for {
		data, err := s.recv()
		if err != nil {
			fail(fmt.Errorf("receive: %w", err))
			return
		}
		for len(data) > 0 {
			var m nlMsg
			m, data, err = nextMsg(data)
			if err != nil {
				fail(err)
				return
			}
			if m.typ != unix.NLMSG_ERROR || m.seq < first || m.seq > lastSeq {
				continue // a stray reply of an earlier exchange
			}
			k := int(m.seq - first)
			if e := errnoOf(m.body); e != 0 {
				errs[k] = fmt.Errorf("%s route %s: %w", ops[k].Kind, ops[k].Route.Dst, e)
			}
			if m.seq == lastSeq {
				return
			}
		}
	}
}
