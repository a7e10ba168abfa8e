package workload

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// ProbeOptions say what to probe. Zero values mean the defaults.
type ProbeOptions struct {
	// Proto is "tcp", "udp" or "http".
	Proto string
	// Addr is the server's host:port.
	Addr string
	// Count is how many connections, datagrams or requests; default 1.
	Count int
	// Interval is the time between two of them; default 10ms (100/s).
	Interval time.Duration
	// Timeout bounds each TCP connection or HTTP request, and how long UDP
	// replies are awaited after the last datagram; default 2s.
	Timeout time.Duration
}

// ProbeResult is what a probe found.
type ProbeResult struct {
	Proto string `json:"proto"`
	To    string `json:"to"`
	Sent  int    `json:"sent"`
	// Received counts answers (UDP: distinct datagrams answered).
	Received int `json:"received"`
	// Local is the probe's own IP address, as its socket has it.
	Local string `json:"local,omitempty"`
	// Seen are the distinct source IPs the server reported.
	Seen []string `json:"seen,omitempty"`
	// SourceKept: every answer saw the probe's own address (no NAT).
	SourceKept bool `json:"sourceKept"`
	// Hosts are the distinct servers that answered.
	Hosts []string `json:"hosts,omitempty"`
	// Errors are the first distinct failures.
	Errors []string `json:"errors,omitempty"`
}

// OK: every attempt was answered, by a server that saw the probe's own
// address.
func (r ProbeResult) OK() bool { return r.Sent > 0 && r.Received == r.Sent && r.SourceKept }

const maxErrors = 5

func (o ProbeOptions) withDefaults() ProbeOptions {
	o.Count = cmp.Or(o.Count, 1)
	o.Interval = cmp.Or(o.Interval, 10*time.Millisecond)
	o.Timeout = cmp.Or(o.Timeout, 2*time.Second)
	return o
}

// Probe reaches the server as o says and reports what it saw.
func Probe(ctx context.Context, o ProbeOptions) (ProbeResult, error) {
	o = o.withDefaults()
	res := ProbeResult{Proto: o.Proto, To: o.Addr}
	var err error
	switch o.Proto {
	case "tcp":
		err = paced(ctx, o, &res, probeTCP)
	case "http":
		err = paced(ctx, o, &res, probeHTTP(o.Timeout))
	case "udp":
		err = probeUDP(ctx, o, &res)
	default:
		return res, fmt.Errorf("probe: unknown protocol %q (tcp, udp or http)", o.Proto)
	}
	res.SourceKept = res.sourceKept()
	return res, err
}

// sourceKept: answers came, and all saw the probe's own address.
func (r ProbeResult) sourceKept() bool {
	return r.Received > 0 && len(r.Seen) == 1 && r.Seen[0] == r.Local
}

// attempt is one TCP connection or HTTP request: the probe's local
// address and the server's reply.
type attempt func(ctx context.Context, addr string, timeout time.Duration) (local string, r Reply, err error)

// paced makes o.Count attempts, o.Interval apart.
func paced(ctx context.Context, o ProbeOptions, res *ProbeResult, try attempt) error {
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for i := range o.Count {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
		res.Sent++
		local, r, err := try(ctx, o.Addr, o.Timeout)
		if err != nil {
			res.addError(err)
			continue
		}
		res.record(local, r)
	}
	return nil
}

func probeTCP(ctx context.Context, addr string, timeout time.Duration) (string, Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", Reply{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	var r Reply
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&r); err != nil {
		return "", Reply{}, fmt.Errorf("read reply from %s: %w", addr, err)
	}
	return c.LocalAddr().String(), r, nil
}

func probeHTTP(timeout time.Duration) attempt {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	return func(ctx context.Context, addr string, _ time.Duration) (string, Reply, error) {
		var local string
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { local = i.Conn.LocalAddr().String() }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, "http://"+addr+"/", nil)
		if err != nil {
			return "", Reply{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", Reply{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", Reply{}, fmt.Errorf("GET http://%s/: %s", addr, resp.Status)
		}
		var r Reply
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return "", Reply{}, fmt.Errorf("read reply from %s: %w", addr, err)
		}
		return local, r, nil
	}
}

// probeUDP sends o.Count numbered datagrams from one socket, o.Interval
// apart, and counts the distinct ones answered until o.Timeout after the
// last.
func probeUDP(ctx context.Context, o ProbeOptions, res *ProbeResult) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", o.Addr)
	if err != nil {
		return fmt.Errorf("probe udp %s: %w", o.Addr, err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	replies, done := make(chan Reply, 64), make(chan struct{})
	defer close(done)
	go readUDP(c, replies, done)
	answered := map[string]bool{}
	take := func(r Reply) {
		if _, err := strconv.Atoi(r.Data); err != nil || answered[r.Data] {
			return // not ours, or a duplicate
		}
		answered[r.Data] = true
		res.record(local, r)
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for res.Sent < o.Count {
		if _, err := c.Write([]byte(strconv.Itoa(res.Sent))); err != nil {
			res.addError(err)
		}
		res.Sent++
		if res.Sent == o.Count {
			break
		}
		if err := drainUntil(ctx, t.C, replies, take); err != nil {
			return err
		}
	}
	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	for res.Received < res.Sent {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			res.addError(fmt.Errorf("%d of %d datagrams unanswered after %s", res.Sent-res.Received, res.Sent, o.Timeout))
			return nil
		case r, ok := <-replies:
			if !ok {
				return nil
			}
			take(r)
		}
	}
	return nil
}

// drainUntil takes replies until tick fires.
func drainUntil(ctx context.Context, tick <-chan time.Time, replies <-chan Reply, take func(Reply)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			return nil
		case r, ok := <-replies:
			if ok {
				take(r)
			}
		}
	}
}

// readUDP decodes replies until the socket fails. A refused datagram
// (ICMP port unreachable, reported on a later read) is skipped: it says
// nothing about the others.
func readUDP(c net.Conn, out chan<- Reply, done <-chan struct{}) {
	defer close(out)
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			continue
		}
		if err != nil {
			return
		}
		var r Reply
		if json.Unmarshal(buf[:n], &r) != nil {
			continue
		}
		select {
		case out <- r:
		case <-done:
			return
		}
	}
}

// record counts an answer and what it says.
func (r *ProbeResult) record(local string, rep Reply) {
	r.Received++
	if ip := hostOf(local); ip != "" {
		r.Local = ip
	}
	if ip := hostOf(rep.Peer); ip != "" && !slices.Contains(r.Seen, ip) {
		r.Seen = append(r.Seen, ip)
	}
	if rep.Host != "" && !slices.Contains(r.Hosts, rep.Host) {
		r.Hosts = append(r.Hosts, rep.Host)
	}
}

func (r *ProbeResult) addError(err error) {
	if s := err.Error(); len(r.Errors) < maxErrors && !slices.Contains(r.Errors, s) {
		r.Errors = append(r.Errors, s)
	}
}

// hostOf is the IP of an ip:port, unmapped from IPv4-in-IPv6.
func hostOf(addrPort string) string {
	h, _, err := net.SplitHostPort(addrPort)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(h); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			return v4.String()
		}
		return ip.String()
	}
	return h
}
