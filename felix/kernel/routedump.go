package kernel

import (
	"fmt"

	"golang.org/x/sys/unix"
)

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
