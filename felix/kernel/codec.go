package kernel

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"

	"golang.org/x/sys/unix"
)

// The rtnetlink route message codec: encoding route ops, splitting
// datagrams into messages, decoding the routes of a dump. Netlink speaks the
// host's byte order.
var native = binary.NativeEndian

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
