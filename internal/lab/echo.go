package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// EchoServer is a TCP server inside one of the lab's namespaces (a pod,
// outside1) that answers each connection with one line: its own name and
// the address the connection came from as it saw it. That line is how a
// test learns which endpoint a Service picked and whether the client's
// address survived the way there.
type EchoServer struct {
	Name string
	ln   net.Listener
	wg   sync.WaitGroup
}

// ServeEcho listens on port, on every address of netns, and answers as
// name until Close.
func ServeEcho(netns, name string, port int) (*EchoServer, error) {
	var ln net.Listener
	err := ns.WithNetNSPath(NSPath(netns), func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("echo server %s: listen on port %d in %s: %w", name, port, netns, err)
	}
	s := &EchoServer{Name: name, ln: ln}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *EchoServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			from, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			fmt.Fprintf(c, "%s %s\n", s.Name, from.Addr().Unmap())
		}()
	}
}

// Close stops the server and waits for its connections to end.
func (s *EchoServer) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// EchoReply is what one connection to an EchoServer learned.
type EchoReply struct {
	// Server is the answering server's name.
	Server string
	// Source is the client's address as the server saw it.
	Source netip.Addr
	// Local is the client's own address on its socket.
	Local netip.Addr
}

// DialEcho connects once from netns to addr and reads the server's line;
// ctx bounds the whole exchange.
func DialEcho(ctx context.Context, netns string, addr netip.AddrPort) (EchoReply, error) {
	c, err := dialInNS(netns)(ctx, "tcp4", addr.String())
	if err != nil {
		return EchoReply{}, err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return EchoReply{}, fmt.Errorf("read the answer of %s from %s: %w", addr, netns, err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return EchoReply{}, fmt.Errorf("answer of %s: %q is not \"name address\"", addr, line)
	}
	src, err := netip.ParseAddr(f[1])
	if err != nil {
		return EchoReply{}, fmt.Errorf("answer of %s: %w", addr, err)
	}
	local, _ := netip.ParseAddrPort(c.LocalAddr().String())
	return EchoReply{Server: f[0], Source: src, Local: local.Addr().Unmap()}, nil
}

// ReachEcho calls DialEcho every interval, each try bounded by try, until
// one is answered or ctx ends; the error then carries the last failure.
func ReachEcho(ctx context.Context, netns string, addr netip.AddrPort, interval, try time.Duration) (EchoReply, error) {
	var last error
	for {
		tctx, cancel := context.WithTimeout(ctx, try)
		r, err := DialEcho(tctx, netns, addr)
		cancel()
		if err == nil {
			return r, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return EchoReply{}, fmt.Errorf("reach %s from %s: %w (last: %v)", addr, netns, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}
