package netconf

import (
	"regexp"
	"strings"
)

// PodInfo is what the runtime says about the pod in CNI_ARGS. All fields are
// empty outside Kubernetes.
type PodInfo struct {
	Namespace string
	Name      string
	UID       string
}

// IsSet reports whether the runtime named the pod.
func (p PodInfo) IsSet() bool { return p.Namespace != "" && p.Name != "" }

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	uidChars     = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

func isDNSSubdomain(s string) bool { return len(s) <= 253 && dnsSubdomain.MatchString(s) }

// ParseArgs reads the Kubernetes keys of CNI_ARGS ("K=V;K=V") and ignores
// every other key. Values are validated as what Kubernetes allows, since
// they end up in interface names and in the agent's records; an invalid one
// is an *ArgsError.
func ParseArgs(cniArgs string) (PodInfo, error) {
	var p PodInfo
	for _, pair := range strings.Split(cniArgs, ";") {
		if pair == "" {
			continue
		}
		key, value, ok := strings.Cut(pair, "=")
		if !ok {
			return PodInfo{}, &ArgsError{Key: key, Problem: "is not KEY=VALUE"}
		}
		switch key {
		case "K8S_POD_NAMESPACE":
			if len(value) > 63 || !dnsLabel.MatchString(value) {
				return PodInfo{}, &ArgsError{Key: key, Problem: "must be a DNS-1123 label"}
			}
			p.Namespace = value
		case "K8S_POD_NAME":
			if !isDNSSubdomain(value) {
				return PodInfo{}, &ArgsError{Key: key, Problem: "must be a DNS-1123 subdomain"}
			}
			p.Name = value
		case "K8S_POD_UID":
			if !uidChars.MatchString(value) {
				return PodInfo{}, &ArgsError{Key: key, Problem: "must be a UID (letters, digits and dashes)"}
			}
			p.UID = value
		}
	}
	if (p.Namespace == "") != (p.Name == "") {
		return PodInfo{}, &ArgsError{Key: "K8S_POD_NAME", Problem: "K8S_POD_NAMESPACE and K8S_POD_NAME must be given together"}
	}
	return p, nil
}
