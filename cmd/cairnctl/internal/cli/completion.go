package cli

import (
	"context"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// completion is "completion bash|zsh": a script that completes commands,
// flags, and node and pool names (asked of cairnctl itself, through the
// hidden "__complete nodes|pools").
func completion(env Env, args []string) (int, error) {
	if len(args) != 1 {
		return ExitError, fmt.Errorf("%w: completion takes bash or zsh", errUsage)
	}
	switch args[0] {
	case "bash":
		fmt.Fprint(env.Stdout, bashCompletion)
	case "zsh":
		// zsh runs bash completion functions through bashcompinit.
		fmt.Fprint(env.Stdout, "autoload -U +X bashcompinit && bashcompinit\n"+bashCompletion)
	default:
		return ExitError, fmt.Errorf("%w: completion for %q: want bash or zsh", errUsage, args[0])
	}
	return ExitOK, nil
}

const bashCompletion = `# cairnctl completion; load with: source <(cairnctl completion bash)
_cairnctl() {
	local cur prev words cword
	cur="${COMP_WORDS[COMP_CWORD]}"
	prev="${COMP_WORDS[COMP_CWORD-1]}"
	local cmd="${COMP_WORDS[1]}" sub="${COMP_WORDS[2]}"
	case "$prev" in
	-o) COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); return ;;
	--socket|--kubeconfig|--report) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--node) COMPREPLY=($(compgen -W "$(cairnctl __complete nodes 2>/dev/null)" -- "$cur")); return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "-o --socket --node --kubeconfig" -- "$cur"))
		return
	fi
	case $COMP_CWORD in
	1) COMPREPLY=($(compgen -W "node route pool ipam completion help" -- "$cur")) ;;
	2) case "$cmd" in
		node) COMPREPLY=($(compgen -W "status" -- "$cur")) ;;
		route) COMPREPLY=($(compgen -W "explain" -- "$cur")) ;;
		pool) COMPREPLY=($(compgen -W "list show" -- "$cur")) ;;
		ipam) COMPREPLY=($(compgen -W "show check release help" -- "$cur")) ;;
		completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
		esac ;;
	*) case "$cmd $sub" in
		"node status") COMPREPLY=($(compgen -W "$(cairnctl __complete nodes 2>/dev/null)" -- "$cur")) ;;
		"pool show") COMPREPLY=($(compgen -W "$(cairnctl __complete pools 2>/dev/null)" -- "$cur")) ;;
		esac ;;
	esac
}
complete -F _cairnctl cairnctl
`

// complete is the hidden "__complete nodes|pools": names, one a line.
func complete(ctx context.Context, env Env, args []string) (int, error) {
	if len(args) != 1 {
		return ExitError, fmt.Errorf("%w: __complete nodes|pools", errUsage)
	}
	cl, err := env.Kube()
	if err != nil {
		return ExitError, err
	}
	var names []string
	switch args[0] {
	case "nodes":
		l, err := cl.Cairn.CairnV1alpha1().CairnNodeStatuses().List(ctx, metav1.ListOptions{})
		if err != nil {
			return ExitError, err
		}
		for _, s := range l.Items {
			names = append(names, s.Name)
		}
	case "pools":
		l, err := cl.Cairn.CairnV1alpha1().IPPools().List(ctx, metav1.ListOptions{})
		if err != nil {
			return ExitError, err
		}
		for _, p := range l.Items {
			names = append(names, p.Name)
		}
	default:
		return ExitError, fmt.Errorf("%w: __complete %s", errUsage, args[0])
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintln(env.Stdout, n)
	}
	return ExitOK, nil
}
