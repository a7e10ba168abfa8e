package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-net/cairn/cni-plugin/netconf"
	"github.com/cairn-net/cairn/cni-plugin/netsetup"
)

// Cairn's own CNI error codes (the spec leaves 100 and above to plugins).
const (
	// CodeInterfaceExists: ADD found the interface already in the container.
	CodeInterfaceExists uint = 100
	// CodeAgentFailed: the agent refused or failed a request for a reason
	// that retrying will not fix.
	CodeAgentFailed uint = 101
	// CodeCheckFailed: CHECK found the attachment differs from prevResult.
	CodeCheckFailed uint = 102
)

// errCheckFailed marks a CHECK that found differences.
var errCheckFailed = errors.New("attachment differs from prevResult")

// errInvalidAgentReply marks an agent answer the plugin cannot use.
var errInvalidAgentReply = errors.New("invalid reply from agent")

// grpcCode returns the gRPC status code carried anywhere in err's chain.
func grpcCode(err error) (codes.Code, bool) {
	var s interface{ GRPCStatus() *status.Status }
	if errors.As(err, &s) && s.GRPCStatus() != nil {
		return s.GRPCStatus().Code(), true
	}
	return codes.OK, false
}

// isAgentNotFound reports whether the agent answered NOT_FOUND.
func isAgentNotFound(err error) bool {
	c, ok := grpcCode(err)
	return ok && c == codes.NotFound
}

// isTemporary reports whether the runtime should simply try again later.
func isTemporary(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	c, ok := grpcCode(err)
	if !ok {
		return false
	}
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// toCNIError gives err the CNI code the runtime acts on. The message is the
// whole wrapped chain, which says what was being done.
func toCNIError(err error) *types.Error {
	if err == nil {
		return nil
	}
	var (
		cniErr   *types.Error
		fieldErr *netconf.FieldError
		decErr   *netconf.DecodeError
		argsErr  *netconf.ArgsError
	)
	code := types.ErrInternal
	switch {
	case errors.As(err, &cniErr):
		return cniErr
	case errors.As(err, &fieldErr):
		code = types.ErrInvalidNetworkConfig
	case errors.As(err, &decErr):
		code = types.ErrDecodingFailure
	case errors.As(err, &argsErr):
		code = types.ErrInvalidEnvironmentVariables
	case errors.Is(err, netsetup.ErrInterfaceExists):
		code = CodeInterfaceExists
	case errors.Is(err, netsetup.ErrNetnsNotFound):
		code = types.ErrUnknownContainer
	case errors.Is(err, netsetup.ErrHostNetns):
		code = types.ErrInvalidNetNS
	case errors.Is(err, errCheckFailed):
		code = CodeCheckFailed
	case isTemporary(err):
		code = types.ErrTryAgainLater
	case errors.Is(err, errInvalidAgentReply):
		code = CodeAgentFailed
	default:
		if _, ok := grpcCode(err); ok {
			code = CodeAgentFailed
		}
	}
	return types.NewError(code, err.Error(), "")
}

// envError is a CNI code-4 error about one environment variable.
func envError(name, problem string) error {
	return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("invalid %s: %s", name, problem), "")
}
