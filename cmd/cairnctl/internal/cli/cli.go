// Package cli is cairnctl's node, route, pool and completion commands:
// argument parsing, reading the API server or the node's agent socket,
// printing tables, JSON or YAML, and exit codes. What is shown and why is
// decided by package view and ipam/usage.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	agentv1 "github.com/cairn-net/cairn/apis/agent/v1"
	"github.com/cairn-net/cairn/apis/client/clientset/versioned"
)

// Exit codes, the same for every command, for scripts to branch on.
const (
	// ExitOK: done, and all is well (node ready with every session
	// Established; the route is routed).
	ExitOK = 0
	// ExitProblems: done, and it found a problem (a node not ready or a
	// session down; a route not installed, or kept only as stale).
	ExitProblems = 1
	// ExitError: bad usage, or the API server or agent socket could not
	// be read.
	ExitError = 2
	// ExitNotFound: the node, pool or pod named does not exist.
	ExitNotFound = 3
)

// Usage is the help of the commands this package serves.
const Usage = `usage: cairnctl [--kubeconfig FILE] <command> ...

commands:
  node status [NODE]              BGP sessions (peer, AS, state, uptime, prefixes in/out, last error),
                                  blocks, route counts and readiness of a node: from the node's agent
                                  socket when NODE is left out (run it on the node), else from NODE's
                                  CairnNodeStatus through the API server
  route explain PREFIX|ADDR|POD   how a node routes a prefix, an address or a pod ([NAMESPACE/]NAME):
                                  announced, learned from whom, installed or refused and why, its pool
                                  and block; the node is the local agent's, or --node NODE
  pool list                       every IP pool with its usage
  pool show NAME                  one pool's usage by node
  ipam show|check|release         IPAM state, audit and repair (cairnctl ipam help)
  completion bash|zsh             a shell completion script: source <(cairnctl completion bash)

flags of node, route and pool (after the command):
  -o table|json|yaml              output format (default table)
  --socket PATH                   the agent socket (default ` + agentv1.DefaultSocketPath + `)
  --node NODE                     route explain: the node whose routes to explain

exit codes:
  0  all is well: node ready and every session Established; the route is routed
  1  the command found a problem: node not ready or a session down; route not installed, or
     kept only as stale from sessions that are down
  2  bad usage, or the API server or the agent socket could not be read
  3  the node, pool or pod does not exist
`

// Clients reach the API server.
type Clients struct {
	Kube  kubernetes.Interface
	Cairn versioned.Interface
}

// Env is what the commands read and write.
type Env struct {
	Stdout, Stderr io.Writer
	// Kube connects to the API server; it fails without a kubeconfig.
	Kube func() (*Clients, error)
	// Agent dials the agent socket at path.
	Agent func(ctx context.Context, path string) (agentv1.AgentClient, io.Closer, error)
	// Now is the clock statuses are judged by.
	Now func() time.Time
}

// errNotFound marks a named object that does not exist (ExitNotFound);
// errUsage bad arguments (ExitError, with the usage).
var (
	errNotFound = errors.New("not found")
	errUsage    = errors.New("bad usage")
)

// Run runs one command (args start with its name) and returns the exit
// code.
func Run(ctx context.Context, env Env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, Usage)
		return ExitError
	}
	var code int
	var err error
	switch args[0] {
	case "node":
		code, err = sub(ctx, env, args, map[string]command{"status": nodeStatus})
	case "route":
		code, err = sub(ctx, env, args, map[string]command{"explain": routeExplain})
	case "pool":
		code, err = sub(ctx, env, args, map[string]command{"list": poolList, "show": poolShow})
	case "completion":
		code, err = completion(env, args[1:])
	case "__complete":
		code, err = complete(ctx, env, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, Usage)
		return ExitOK
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch {
	case err == nil:
		return code
	case errors.Is(err, errNotFound):
		fmt.Fprintf(env.Stderr, "cairnctl: %v\n", err)
		return ExitNotFound
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.Stderr, "cairnctl: %v\n\n%s", err, Usage)
		return ExitError
	default:
		fmt.Fprintf(env.Stderr, "cairnctl: %v\n", err)
		return ExitError
	}
}

// command runs a subcommand with its arguments (after its name).
type command func(ctx context.Context, env Env, args []string) (int, error)

func sub(ctx context.Context, env Env, args []string, cmds map[string]command) (int, error) {
	if len(args) < 2 {
		return ExitError, fmt.Errorf("%w: %s needs a subcommand", errUsage, args[0])
	}
	c, ok := cmds[args[1]]
	if !ok {
		return ExitError, fmt.Errorf("%w: unknown command %q", errUsage, args[0]+" "+args[1])
	}
	return c(ctx, env, args[2:])
}

// options are the flags common to node, route and pool.
type options struct {
	output, socket, node string
}

// parse reads flags anywhere among args and returns the positional ones.
func parse(name string, args []string, withNode bool) (options, []string, error) {
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.output, "o", "table", "")
	fs.StringVar(&o.socket, "socket", agentv1.DefaultSocketPath, "")
	if withNode {
		fs.StringVar(&o.node, "node", "", "")
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, nil, fmt.Errorf("%w: %s: %v", errUsage, name, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	switch o.output {
	case "table", "json", "yaml":
	default:
		return o, nil, fmt.Errorf("%w: -o %s: want table, json or yaml", errUsage, o.output)
	}
	return o, pos, nil
}

// emit writes v as JSON or YAML, or calls table.
func emit(w io.Writer, format string, v any, table func() error) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	return table()
}
