package plugin

import (
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// An agent that does not answer in time (the API server is unreachable,
// say) gives the runtime "try again later" and the user a message that
// says what happened, not only gRPC's words.
func TestAgentTimeoutSaysWhat(t *testing.T) {
	a := agentClient{timeout: 5 * time.Second, socket: "/run/cairn/agent.sock"}
	err := toCNIError(a.wrap("Allocate", status.Error(codes.DeadlineExceeded, "stream terminated by RST_STREAM with error code: CANCEL")))
	if err.Code != types.ErrTryAgainLater || !strings.Contains(err.Msg, "no answer within 5s") || !strings.Contains(err.Msg, "API server") {
		t.Fatalf("got code %d %q", err.Code, err.Msg)
	}
}
