package agent

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/speaker"
)

// A TCP-MD5 password mismatch is silent: the kernel of the side that
// checks drops the segment and tells the application nothing, so GoBGP
// sees only connections that time out. What the kernel does keep are
// counters of the segments it dropped, per network namespace (TcpExt in
// /proc/net/netstat). The agent reads them with the status: while they
// rise, the sessions that are down and could be the cause are marked
// AuthFailure. The counters do not name the peer, so with several such
// sessions down each is marked; the reason says what the kernel saw.

// defaultNetstat is where the node's TCP counters are: /proc/net is the
// reading process's network namespace, the node's.
const defaultNetstat = "/proc/net/netstat"

// md5Counters are the kernel's counts of TCP segments dropped for their
// TCP-MD5 signature.
type md5Counters struct {
	// Failure: a signature that does not verify (the passwords differ).
	Failure uint64
	// NotFound: no signature where one is expected (the peer has no
	// password, this side has).
	NotFound uint64
	// Unexpected: a signature where none is expected (the peer has a
	// password, this side has none).
	Unexpected uint64
}

// readNetstat parses the TcpExt lines of /proc/net/netstat: a line of
// names, then a line of values.
func readNetstat(r io.Reader) (md5Counters, error) {
	var c md5Counters
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var names []string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = fields[1:]
			continue
		}
		vals := fields[1:]
		if len(vals) != len(names) {
			return c, fmt.Errorf("netstat: %d TcpExt names but %d values", len(names), len(vals))
		}
		for i, n := range names {
			dst := map[string]*uint64{"TCPMD5Failure": &c.Failure, "TCPMD5NotFound": &c.NotFound, "TCPMD5Unexpected": &c.Unexpected}[n]
			if dst == nil {
				continue
			}
			v, err := strconv.ParseUint(vals[i], 10, 64)
			if err != nil {
				return c, fmt.Errorf("netstat: %s: %w", n, err)
			}
			*dst = v
		}
		return c, nil
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("netstat: %w", err)
	}
	return c, fmt.Errorf("netstat: no TcpExt counters")
}

// netstatFile reads the counters from path.
func netstatFile(path string) func() (md5Counters, error) {
	return func() (md5Counters, error) {
		f, err := os.Open(path)
		if err != nil {
			return md5Counters{}, err
		}
		defer f.Close()
		return readNetstat(f)
	}
}

// authSession is what deciding a session's AuthFailure needs.
type authSession struct {
	Name        string
	Established bool
	// HasPassword: this side signs the session's segments.
	HasPassword bool
}

// authWatch marks sessions AuthFailure from the kernel's counters. A mark
// stays until the session is Established, loses or gains its password,
// or goes, so a session retried every minute or two does not flicker in
// and out of the status.
type authWatch struct {
	read func() (md5Counters, error)
	last *md5Counters
	// marked sessions, with whether they had a password when marked.
	marked map[string]authMark
}

type authMark struct {
	hasPassword bool
	reason      string
}

// Reasons for AuthFailure, by what the kernel saw. They hold no counts,
// so that the status does not change with every dropped segment.
const (
	authReasonWrong      = "TCP-MD5 authentication failing: this node's kernel drops segments whose signature does not verify; the two sides' passwords differ"
	authReasonMissing    = "TCP-MD5 authentication failing: this node's kernel drops unsigned segments from peers it has a password for; the peer has no password set"
	authReasonUnexpected = "TCP-MD5 authentication failing: this node's kernel drops signed segments from a peer it has no password for; the peer has a password, this session none"
)

// observe reads the counters and returns the sessions marked
// AuthFailure, with their reasons. Sessions are those the speaker has
// now. The first reading only sets the baseline; a failed reading keeps
// the marks as they are.
func (w *authWatch) observe(sessions []authSession) map[string]string {
	if w.marked == nil {
		w.marked = map[string]authMark{}
	}
	if w.read != nil {
		if now, err := w.read(); err == nil {
			if w.last != nil {
				w.mark(sessions, *w.last, now)
			}
			w.last = &now
		}
	}
	return w.settle(sessions)
}

// mark marks the down sessions the rise from before to now may be about.
func (w *authWatch) mark(sessions []authSession, before, now md5Counters) {
	for _, s := range sessions {
		if s.Established {
			continue
		}
		switch {
		case s.HasPassword && now.Failure > before.Failure:
			w.marked[s.Name] = authMark{hasPassword: true, reason: authReasonWrong}
		case s.HasPassword && now.NotFound > before.NotFound:
			w.marked[s.Name] = authMark{hasPassword: true, reason: authReasonMissing}
		case !s.HasPassword && now.Unexpected > before.Unexpected:
			w.marked[s.Name] = authMark{hasPassword: false, reason: authReasonUnexpected}
		}
	}
}

// settle drops the marks that no longer hold and returns the others.
func (w *authWatch) settle(sessions []authSession) map[string]string {
	out := map[string]string{}
	present := map[string]authSession{}
	for _, s := range sessions {
		present[s.Name] = s
	}
	for name, m := range w.marked {
		s, ok := present[name]
		if !ok || s.Established || s.HasPassword != m.hasPassword {
			delete(w.marked, name)
			continue
		}
		out[name] = m.reason
	}
	return out
}

// sessionProblem classifies a session that is not Established: an
// AuthFailure mark, else a shutdown for maximum prefixes.
func sessionProblem(p speaker.PeerState, authReason string) (v1.SessionProblem, string) {
	switch {
	case p.State == speaker.StateEstablished:
		return "", p.LastError
	case authReason != "":
		return v1.ProblemAuthFailure, authReason
	case speaker.IsMaxPrefixes(p.LastError):
		return v1.ProblemMaxPrefixes, p.LastError
	}
	return "", p.LastError
}
