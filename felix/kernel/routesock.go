package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"
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

var native = binary.NativeEndian

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

func align4(n int) int { return (n + 3) &^ 3 }

func appendHeader(b []byte, typ, flags uint16, seq uint32) []byte {
	b = native.AppendUint32(b, 0) // length, patched by finish
	b = native.AppendUint16(b, typ)
	b = native.AppendUint16(b, flags)
	b = native.AppendUint32(b, seq)
	return native.AppendUint32(b, 0)
}

func finishMsg(b []byte, start int) {
	native.PutUint32(b[start:], uint32(len(b)-start))
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = native.AppendUint16(b, uint16(4+len(data)))
	b = native.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func appendU32Attr(b []byte, typ uint16, v uint32) []byte {
	b = native.AppendUint16(b, 8)
	b = native.AppendUint16(b, typ)
	return native.AppendUint32(b, v)
}

func addrFamily(a netip.Addr) byte {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func appendAddrAttr(b []byte, typ uint16, a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		return appendAttr(b, typ, v[:])
	}
	v := a.As16()
	return appendAttr(b, typ, v[:])
}

// appendRouteOp encodes one RTM_NEWROUTE/RTM_DELROUTE message.
func appendRouteOp(b []byte, op *RouteOp, seq uint32) []byte {
	start := len(b)
	r := &op.Route
	typ, flags := uint16(unix.RTM_NEWROUTE), uint16(unix.NLM_F_REQUEST|unix.NLM_F_CREATE)
	switch op.Kind {
	case OpAdd:
		flags |= unix.NLM_F_EXCL
	case OpReplace:
		flags |= unix.NLM_F_REPLACE
	case OpDelete:
		typ, flags = unix.RTM_DELROUTE, unix.NLM_F_REQUEST
	}
	b = appendHeader(b, typ, flags, seq)
	scope, rtype := r.Scope, r.Type
	if op.Kind == OpDelete {
		// Match any scope and type; the protocol still must match, which is
		// what keeps a delete off foreign routes.
		scope, rtype = unix.RT_SCOPE_NOWHERE, unix.RTN_UNSPEC
	}
	dst := r.Dst.Masked()
	b = append(b, addrFamily(dst.Addr()), byte(dst.Bits()), 0, 0,
		unix.RT_TABLE_MAIN, r.Protocol, scope, rtype, 0, 0, 0, 0)
	b = appendAddrAttr(b, unix.RTA_DST, dst.Addr())
	if r.Priority != 0 {
		b = appendU32Attr(b, unix.RTA_PRIORITY, r.Priority)
	}
	if op.Kind != OpDelete {
		if r.LinkIndex != 0 {
			b = appendU32Attr(b, unix.RTA_OIF, uint32(r.LinkIndex))
		}
		switch {
		case len(r.NextHops) == 1:
			b = appendAddrAttr(b, unix.RTA_GATEWAY, r.NextHops[0].Gateway)
		case len(r.NextHops) > 1:
			b = appendMultipath(b, r.NextHops)
		}
	}
	finishMsg(b, start)
	return b
}

func appendMultipath(b []byte, hops []NextHop) []byte {
	start := len(b)
	b = native.AppendUint32(b, 0) // rtattr header, patched below
	for _, h := range hops {
		nh := len(b)
		b = native.AppendUint16(b, 0) // rtnh_len
		b = append(b, 0, 0)           // flags, hops (weight-1)
		b = native.AppendUint32(b, uint32(h.LinkIndex))
		b = appendAddrAttr(b, unix.RTA_GATEWAY, h.Gateway)
		native.PutUint16(b[nh:], uint16(len(b)-nh))
	}
	native.PutUint16(b[start:], uint16(len(b)-start))
	native.PutUint16(b[start+2:], unix.RTA_MULTIPATH)
	return b
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

// nlMsg is one netlink message inside a received datagram.
type nlMsg struct {
	typ, flags uint16
	seq        uint32
	body       []byte
}

// nextMsg splits the first message off buf.
func nextMsg(buf []byte) (nlMsg, []byte, error) {
	if len(buf) < nlmsgHdrLen {
		return nlMsg{}, nil, fmt.Errorf("short netlink message (%d bytes)", len(buf))
	}
	l := int(native.Uint32(buf))
	if l < nlmsgHdrLen || l > len(buf) {
		return nlMsg{}, nil, fmt.Errorf("bad netlink message length %d", l)
	}
	m := nlMsg{
		typ:   native.Uint16(buf[4:]),
		flags: native.Uint16(buf[6:]),
		seq:   native.Uint32(buf[8:]),
		body:  buf[nlmsgHdrLen:l],
	}
	rest := buf[min(align4(l), len(buf)):]
	return m, rest, nil
}

func errnoOf(body []byte) unix.Errno {
	if len(body) < 4 {
		return unix.EBADMSG
	}
	return unix.Errno(-int32(native.Uint32(body)))
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

// Dump pipeline: the kernel does its dump work inside recvfrom, so one
// goroutine only receives (the kernel's work, on one core) while the
// caller's goroutine decodes and hands routes to fn (felix's work, on the
// other).
const (
	dumpBufSize  = 128 << 10 // the kernel's dump datagrams are at most 32 KiB
	dumpBufCount = 4
)

type dumpChunk struct {
	buf []byte
	err error
}

// dump streams the main table of one family to fn.
func (s *routeSocket) dump(family int, fn func(*Route)) error {
	af := byte(unix.AF_INET)
	if family == 6 {
		af = unix.AF_INET6
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ensureOpen(); err != nil {
		return err
	}
	s.seq++
	seq := s.seq
	req := appendHeader(s.wbuf[:0], unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq)
	req = append(req, af, 0, 0, 0, unix.RT_TABLE_MAIN, 0, 0, 0, 0, 0, 0, 0)
	finishMsg(req, 0)
	s.wbuf = req
	if err := s.send(req); err != nil {
		_ = s.reset()
		return fmt.Errorf("request IPv%d route dump: %w", family, err)
	}
	for len(s.dumpBufs) < dumpBufCount {
		s.dumpBufs = append(s.dumpBufs, make([]byte, dumpBufSize))
	}
	free := make(chan []byte, dumpBufCount)
	for _, b := range s.dumpBufs {
		free <- b
	}
	full := make(chan dumpChunk, dumpBufCount)
	go s.receiveDump(seq, free, full)

	var r Route
	interrupted := false
	var failure error
	for c := range full {
		if c.err != nil {
			failure = c.err
			continue
		}
		if failure == nil {
			failure = s.decodeDump(c.buf, seq, &r, fn, &interrupted)
		}
		free <- c.buf[:cap(c.buf)]
	}
	if failure != nil {
		_ = s.reset()
		return fmt.Errorf("read IPv%d route dump: %w", family, failure)
	}
	if interrupted {
		return ErrDumpInterrupted
	}
	return nil
}

// receiveDump receives datagrams until the one that ends the dump (or an
// error), then closes full.
func (s *routeSocket) receiveDump(seq uint32, free chan []byte, full chan<- dumpChunk) {
	defer close(full)
	for {
		buf := <-free
		n, err := s.recvInto(buf)
		if err != nil {
			full <- dumpChunk{err: err}
			return
		}
		full <- dumpChunk{buf: buf[:n]}
		if endsDump(buf[:n], seq) {
			return
		}
	}
}

func (s *routeSocket) recvInto(buf []byte) (int, error) {
	for {
		n, _, err := unix.Recvfrom(s.fd, buf, unix.MSG_TRUNC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n > len(buf) {
			return 0, fmt.Errorf("netlink datagram of %d bytes exceeds the %d-byte buffer", n, len(buf))
		}
		return n, nil
	}
}

// endsDump reports whether buf holds the DONE (or error) of dump seq.
func endsDump(buf []byte, seq uint32) bool {
	for len(buf) > 0 {
		m, rest, err := nextMsg(buf)
		if err != nil {
			return true // the decoder reports it
		}
		if m.seq == seq && (m.typ == unix.NLMSG_DONE || m.typ == unix.NLMSG_ERROR) {
			return true
		}
		buf = rest
	}
	return false
}

func (s *routeSocket) decodeDump(buf []byte, seq uint32, r *Route, fn func(*Route), interrupted *bool) error {
	for len(buf) > 0 {
		m, rest, err := nextMsg(buf)
		if err != nil {
			return err
		}
		buf = rest
		if m.seq != seq {
			continue
		}
		if m.flags&unix.NLM_F_DUMP_INTR != 0 {
			*interrupted = true
		}
		switch m.typ {
		case unix.NLMSG_DONE, unix.NLMSG_ERROR:
			if e := errnoOf(m.body); e != 0 && len(m.body) >= 4 {
				return e
			}
		case unix.RTM_NEWROUTE:
			*r = Route{}
			if decodeRoute(m.body, r) {
				fn(r)
			}
		}
	}
	return nil
}

// decodeRoute decodes a main-table route into r; ok is false for other
// tables and for cached clones.
func decodeRoute(b []byte, r *Route) (ok bool) {
	if len(b) < rtmsgLen {
		return false
	}
	fam, dstLen, srcLen := b[0], int(b[1]), b[2]
	table := uint32(b[4])
	r.Protocol, r.Scope, r.Type = b[5], b[6], b[7]
	if native.Uint32(b[8:])&unix.RTM_F_CLONED != 0 || srcLen != 0 {
		// Clones are cache entries; source-specific routes are never ours
		// and cannot collide with a destination-only route.
		return false
	}
	var dst netip.Addr
	for a := b[rtmsgLen:]; len(a) >= 4; {
		l, typ := int(native.Uint16(a)), native.Uint16(a[2:])
		if l < 4 || l > len(a) {
			return false
		}
		v := a[4:l]
		switch typ {
		case unix.RTA_TABLE:
			if len(v) >= 4 {
				table = native.Uint32(v)
			}
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(v)
		case unix.RTA_OIF:
			if len(v) >= 4 {
				r.LinkIndex = int(native.Uint32(v))
			}
		case unix.RTA_PRIORITY:
			if len(v) >= 4 {
				r.Priority = native.Uint32(v)
			}
		case unix.RTA_GATEWAY:
			if gw, ok := netip.AddrFromSlice(v); ok {
				r.NextHops = []NextHop{{Gateway: gw}}
			}
		case unix.RTA_MULTIPATH:
			r.NextHops = decodeMultipath(v)
		}
		a = a[min(align4(l), len(a)):]
	}
	if table != unix.RT_TABLE_MAIN {
		return false
	}
	if !dst.IsValid() {
		if fam == unix.AF_INET {
			dst = netip.IPv4Unspecified()
		} else {
			dst = netip.IPv6Unspecified()
		}
	}
	if len(r.NextHops) == 1 && r.NextHops[0].LinkIndex == 0 {
		r.NextHops[0].LinkIndex = r.LinkIndex
	}
	r.Dst = netip.PrefixFrom(dst, dstLen)
	return true
}

func decodeMultipath(b []byte) []NextHop {
	var hops []NextHop
	for len(b) >= unix.SizeofRtNexthop {
		l := int(native.Uint16(b))
		if l < unix.SizeofRtNexthop || l > len(b) {
			break
		}
		h := NextHop{LinkIndex: int(int32(native.Uint32(b[4:])))}
		for a := b[unix.SizeofRtNexthop:l]; len(a) >= 4; {
			al, typ := int(native.Uint16(a)), native.Uint16(a[2:])
			if al < 4 || al > len(a) {
				break
			}
			if typ == unix.RTA_GATEWAY {
				h.Gateway, _ = netip.AddrFromSlice(a[4:al])
			}
			a = a[min(align4(al), len(a)):]
		}
		hops = append(hops, h)
		b = b[min(align4(l), len(b)):]
	}
	SortNextHops(hops)
	return hops
}

// SortNextHops orders next hops by gateway so that routes compare equal
// whatever order their paths were given in.
func SortNextHops(hops []NextHop) {
	sort.Slice(hops, func(i, j int) bool { return hops[i].Gateway.Less(hops[j].Gateway) })
}
