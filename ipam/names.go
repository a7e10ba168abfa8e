package ipam

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// AffinityPrefix starts an IPAMBlock's spec.affinity value.
const AffinityPrefix = "node:"

// BlockName is the IPAMBlock object name for a block: the address with
// dashes ("10-244-0-64-26"; IPv6 in expanded form so every label starts
// and ends with a hex digit). Deriving the name from the cidr is what makes
// creating the block the arbiter between nodes racing to claim it.
func BlockName(block netip.Prefix) string {
	a := block.Addr()
	s := a.String()
	if a.Is6() {
		s = a.StringExpanded()
	}
	s = strings.NewReplacer(".", "-", ":", "-").Replace(s)
	return fmt.Sprintf("%s-%d", s, block.Bits())
}

// AffinityName is the BlockAffinity object name for node's claim on block:
// "<node>.<block name>", or a hash when that is not a valid name.
func AffinityName(node string, block netip.Prefix) string {
	return nameOrHash("a-", node+"."+BlockName(block))
}

// HandleName is the IPAMHandle object name for a handle ID: the ID itself
// when it is a valid object name, otherwise a hash of it. The object keeps
// the ID in spec.handleID.
func HandleName(handleID string) string {
	return nameOrHash("h-", handleID)
}

// HandleID builds the handle ID of a pod interface: "<node>/<container
// ID>/<interface>", each exactly as given. '/' occurs in none of the parts
// (a node name is a DNS subdomain; CNI container IDs are letters, digits,
// '_', '.' and '-'; interface names never hold '/'), so two attachments
// never share an ID. The node is part of it because a container ID is
// unique only within one node's runtime (cnitool derives it from the netns
// name). The ID is not a valid object name, so HandleName hashes it.
func HandleID(node, containerID, iface string) string {
	return node + "/" + containerID + "/" + iface
}

// LegacyHandleID is the handle ID that agents before HandleID built:
// "<container ID>.<interface>" lower-cased, ambiguous when either part
// holds a dot or upper case. It never contains '/', so it never equals a
// HandleID. Handles with such IDs are still released by CNI DEL and GC:
// the agent releases the ID its endpoint record names, and both IDs when
// it has no record.
func LegacyHandleID(containerID, iface string) string {
	return strings.ToLower(containerID) + "." + strings.ToLower(iface)
}

func nameOrHash(prefix, s string) string {
	if len(validation.IsDNS1123Subdomain(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return prefix + hex.EncodeToString(sum[:20])
}

// AffinityValue is the spec.affinity of a block owned by node.
func AffinityValue(node string) string { return AffinityPrefix + node }

// AffinityNode returns the node named by a block's spec.affinity, or "".
func AffinityNode(affinity string) string {
	node, ok := strings.CutPrefix(affinity, AffinityPrefix)
	if !ok {
		return ""
	}
	return node
}
