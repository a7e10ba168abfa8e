package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ProbeResult is what the receiving pod saw of a probe datagram.
type ProbeResult struct {
	// Source is the sender address the receiver saw.
	Source netip.Addr
	// TTL is the datagram's TTL on arrival; the sender sent SentTTL.
	TTL, SentTTL int
}

// Hops is the number of routers that forwarded the probe.
func (r ProbeResult) Hops() int { return r.SentTTL - r.TTL }

// probeTTL is the TTL probes leave with (the Linux default).
const probeTTL = 64

// Probe sends a UDP datagram from one pod to another and reports the
// source address and TTL the receiver saw. Both sockets are opened inside
// the pods' namespaces, so the receiver is a listener in the receiving pod
// and the sender's packet leaves through the sending pod's eth0; nothing
// else is involved. The datagram is resent every 200ms until it arrives or
// ctx ends (the first may wait for neighbour resolution).
func Probe(ctx context.Context, from, to Pod) (ProbeResult, error) {
	return ProbeAddr(ctx, from, to, to.IP)
}

// ProbeAddr is Probe to one of to's addresses (its IPv6 one in a
// dual-stack lab, say); the TTL is the IPv6 hop limit there.
func ProbeAddr(ctx context.Context, from, to Pod, dst netip.Addr) (ProbeResult, error) {
	recv, err := listenUDPIn(to.NS, dst)
	if err != nil {
		return ProbeResult{}, err
	}
	defer recv.Close()
	send, err := dialUDPIn(from.NS, recv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		return ProbeResult{}, err
	}
	defer send.Close()
	if err := setProbeTTL(send, dst); err != nil {
		return ProbeResult{}, fmt.Errorf("set probe TTL: %w", err)
	}
	token := []byte("cairn-lab-probe " + randomHex(8))
	got := make(chan ProbeResult, 1)
	errc := make(chan error, 1)
	go func() {
		res, err := receiveProbe(recv, token, dst.Is6())
		if err != nil {
			errc <- err
			return
		}
		got <- res
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := send.Write(token); err != nil {
			return ProbeResult{}, fmt.Errorf("send probe %s -> %s: %w", from.Name, to.Name, err)
		}
		select {
		case res := <-got:
			return res, nil
		case err := <-errc:
			return ProbeResult{}, err
		case <-ctx.Done():
			recv.Close()
			return ProbeResult{}, fmt.Errorf("probe %s -> %s (%s): no datagram arrived: %w", from.Name, to.Name, dst, ctx.Err())
		case <-tick.C:
		}
	}
}

// receiveProbe reads until the token arrives (ignoring anything else) and
// returns the sender and TTL from the socket's control messages.
func receiveProbe(c *net.UDPConn, token []byte, v6 bool) (ProbeResult, error) {
	read, err := ttlReader(c, v6)
	if err != nil {
		return ProbeResult{}, fmt.Errorf("ask for TTLs: %w", err)
	}
	buf := make([]byte, 512)
	for {
		n, ttl, src, err := read(buf)
		if err != nil {
			return ProbeResult{}, fmt.Errorf("receive probe: %w", err)
		}
		if string(buf[:n]) != string(token) || ttl < 0 {
			continue
		}
		ap, err := netip.ParseAddrPort(src.String())
		if err != nil {
			return ProbeResult{}, fmt.Errorf("probe source %v: %w", src, err)
		}
		return ProbeResult{Source: ap.Addr().Unmap(), TTL: ttl, SentTTL: probeTTL}, nil
	}
}

// ttlReader reads datagrams with their TTL (IPv4) or hop limit (IPv6);
// -1 when the kernel gave none.
func ttlReader(c *net.UDPConn, v6 bool) (func([]byte) (int, int, net.Addr, error), error) {
	if v6 {
		pc := ipv6.NewPacketConn(c)
		if err := pc.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
			return nil, err
		}
		return func(b []byte) (int, int, net.Addr, error) {
			n, cm, src, err := pc.ReadFrom(b)
			if cm == nil {
				return n, -1, src, err
			}
			return n, cm.HopLimit, src, err
		}, nil
	}
	pc := ipv4.NewPacketConn(c)
	if err := pc.SetControlMessage(ipv4.FlagTTL, true); err != nil {
		return nil, err
	}
	return func(b []byte) (int, int, net.Addr, error) {
		n, cm, src, err := pc.ReadFrom(b)
		if cm == nil {
			return n, -1, src, err
		}
		return n, cm.TTL, src, err
	}, nil
}

func setProbeTTL(c *net.UDPConn, dst netip.Addr) error {
	if dst.Is6() {
		return ipv6.NewConn(c).SetHopLimit(probeTTL)
	}
	return ipv4.NewConn(c).SetTTL(probeTTL)
}

// udpNet is the network to open for addr's family.
func udpNet(addr netip.Addr) string {
	if addr.Is6() {
		return "udp6"
	}
	return "udp4"
}

func listenUDPIn(netns string, addr netip.Addr) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := ns.WithNetNSPath(NSPath(netns), func(ns.NetNS) error {
		var err error
		c, err = net.ListenUDP(udpNet(addr), net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, netns, err)
	}
	return c, nil
}

func dialUDPIn(netns string, to *net.UDPAddr) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := ns.WithNetNSPath(NSPath(netns), func(ns.NetNS) error {
		var err error
		c, err = net.DialUDP(udpNet(to.AddrPort().Addr().Unmap()), nil, to)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open a socket to %s in %s: %w", to, netns, err)
	}
	return c, nil
}

// Ping runs ping(8) in the pod's namespace: one echo, retried every
// 200ms until one is answered or ctx ends.
func Ping(ctx context.Context, from Pod, to netip.Addr) error {
	var last error
	for {
		_, err := run(ctx, "ip", "netns", "exec", from.NS, "ping", "-n", "-q", "-c", "1", "-W", "1", to.String())
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("ping %s from %s: %w (last: %v)", to, from.Name, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
