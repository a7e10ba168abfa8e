package lab

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// HTTPGet fetches url from inside the namespace of the named pod, node or
// router, as a process there would: the connection's socket is opened in
// that namespace (on a thread locked into it), so an address such as
// http://127.0.0.1:9091/metrics is the node's own loopback. Nothing is
// run in the namespace and nothing listens outside it.
func (l *Lab) HTTPGet(ctx context.Context, name, url string) ([]byte, error) {
	nsName, err := l.ResolveNS(name)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:       dialInNS(nsName),
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s in %s: %w", url, name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s in %s: %w", url, name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", url, name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("get %s in %s: %s", url, name, resp.Status)
	}
	return body, nil
}
