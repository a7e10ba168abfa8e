// Package workload is the lab's test workload: a server that answers TCP,
// UDP and HTTP with the source address it saw, and a probe that connects to
// one and reports what the server saw next to its own address, so a test
// can tell that a packet arrived with its sender's address (no NAT).
// cmd/workload is its binary, the cairn.dev/workload image's entrypoint.
package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Reply is what the server answers: one JSON object per TCP connection,
// UDP datagram or HTTP request.
type Reply struct {
	// Proto is "tcp", "udp" or "http".
	Proto string `json:"proto"`
	// Peer is the client's address as the server saw it (ip:port).
	Peer string `json:"peer"`
	// Local is the server's address the client reached.
	Local string `json:"local"`
	// Host is the server's hostname (the pod's name in Kubernetes).
	Host string `json:"host"`
	// Data echoes a UDP datagram's payload, so a client matches replies to
	// requests.
	Data string `json:"data,omitempty"`
}

// maxDatagram bounds the UDP payload echoed back.
const maxDatagram = 1024

// writeTimeout bounds a TCP answer to a client that does not read.
const writeTimeout = 5 * time.Second

// ServeTCP answers every connection on l with one Reply line, then closes
// it, until ctx ends.
func ServeTCP(ctx context.Context, l net.Listener, host string, log *slog.Logger) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		go func() {
			defer c.Close()
			c.SetWriteDeadline(time.Now().Add(writeTimeout))
			r := Reply{Proto: "tcp", Peer: c.RemoteAddr().String(), Local: c.LocalAddr().String(), Host: host}
			if err := json.NewEncoder(c).Encode(r); err != nil {
				log.Debug("answering a TCP client failed", "peer", r.Peer, "err", err)
			}
		}()
	}
}

// ServeUDP answers every datagram on pc with a Reply carrying its payload,
// until ctx ends.
func ServeUDP(ctx context.Context, pc net.PacketConn, host string, log *slog.Logger) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, maxDatagram)
	local := pc.LocalAddr().String()
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read on %s: %w", local, err)
		}
		b, err := json.Marshal(Reply{Proto: "udp", Peer: from.String(), Local: local, Host: host, Data: string(buf[:n])})
		if err != nil {
			return fmt.Errorf("encode UDP reply: %w", err)
		}
		if _, err := pc.WriteTo(b, from); err != nil {
			log.Debug("answering a UDP client failed", "peer", from.String(), "err", err)
		}
	}
}

// HTTPHandler answers GET / with a Reply and /healthz with "ok".
func HTTPHandler(host string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		local := ""
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			local = a.String()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Reply{Proto: "http", Peer: r.RemoteAddr, Local: local, Host: host})
	})
	return mux
}

// ServeHTTP serves HTTPHandler on l until ctx ends.
func ServeHTTP(ctx context.Context, l net.Listener, host string) error {
	srv := &http.Server{Handler: HTTPHandler(host), ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP on %s: %w", l.Addr(), err)
	}
	return nil
}
