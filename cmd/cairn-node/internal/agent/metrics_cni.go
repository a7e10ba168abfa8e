package agent

import (
	"context"
	"path"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// cniVerbs maps the agent's calls to the CNI verb they serve; calls not
// listed (cairnctl's) are not CNI traffic and are not counted.
var cniVerbs = map[string]string{
	"Allocate": "ADD", "EndpointUp": "ADD", "Release": "DEL",
	"Check": "CHECK", "GC": "GC", "Status": "STATUS",
}

// CNI error codes the plugin reports for the agent's answers, as
// cni-plugin/plugin's toCNIError maps them.
const (
	cniOK          = 0
	cniTryAgain    = 11  // types.ErrTryAgainLater
	cniAgentFailed = 101 // plugin.CodeAgentFailed
)

// cniCode is the CNI error code the plugin turns the agent's answer to
// rpc into.
func cniCode(rpc string, err error) int {
	if err == nil {
		return cniOK
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return cniTryAgain
	case codes.NotFound:
		if rpc == "Release" {
			return cniOK // DEL of what is gone is success
		}
	}
	return cniAgentFailed
}

// cniInterceptor times and counts the plugin's calls.
func (m *metrics) cniInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	rpc := path.Base(info.FullMethod)
	if verb, ok := cniVerbs[rpc]; ok {
		m.cniDuration.WithLabelValues(verb, rpc).Observe(time.Since(start).Seconds())
		m.cniRequests.WithLabelValues(verb, rpc, strconv.Itoa(cniCode(rpc, err))).Inc()
	}
	return resp, err
}
