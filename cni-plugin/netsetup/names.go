package netsetup

import (
	"crypto/sha1" // a name hash, not a security boundary (as Calico's)
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
)

// HostVethPrefix starts the name of every host veth Cairn creates; only
// links with this prefix are ever deleted as Cairn's.
const HostVethPrefix = "crn"

// defaultIfName is the pod interface Kubernetes asks for.
const defaultIfName = "eth0"

// HostVethName derives the host end's name: "crn" and the first 11 hex
// digits of sha1("<namespace>.<pod>") (15 characters, the kernel's limit).
// It is deterministic so that the agent, DEL and a re-ADD of the same pod
// agree on it without stored state. An interface other than eth0 adds
// ".<ifname>" to the key, so two attachments of one pod never share a name.
// Outside Kubernetes the key is "<containerID>/<ifname>" ('/' occurs in
// neither, so the key is unambiguous).
func HostVethName(podNamespace, podName, containerID, ifName string) string {
	var key string
	switch {
	case podNamespace != "" && podName != "" && ifName == defaultIfName:
		key = podNamespace + "." + podName
	case podNamespace != "" && podName != "":
		key = podNamespace + "." + podName + "." + ifName
	default:
		key = containerID + "/" + ifName
	}
	sum := sha1.Sum([]byte(key))
	return HostVethPrefix + hex.EncodeToString(sum[:])[:11]
}

// IsHostVethName reports whether name looks like one HostVethName makes.
func IsHostVethName(name string) bool {
	if len(name) != len(HostVethPrefix)+11 || !strings.HasPrefix(name, HostVethPrefix) {
		return false
	}
	_, err := hex.DecodeString(name[len(HostVethPrefix):] + "0")
	return err == nil
}

// HostMAC returns the MAC of every host veth, ee:ee:ee:ee:ee:ee. Each veth
// is its own L2 segment, so one fixed address is enough, and the plugin
// knows it without reading it back from the kernel (the pod's permanent
// gateway neighbour uses it).
func HostMAC() net.HardwareAddr {
	return net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
}

// RandomMAC returns a locally administered unicast MAC read from r (use
// crypto/rand.Reader); choosing it up front saves reading it back.
func RandomMAC(r io.Reader) (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := io.ReadFull(r, mac); err != nil {
		return nil, fmt.Errorf("read random MAC: %w", err)
	}
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac, nil
}
