package netsetup

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
)

// ErrNotOurs: the pod's interface is not a veth whose host end Cairn made
// (another plugin's, say, after an ADD that failed on it); DEL leaves it.
var ErrNotOurs = errors.New("interface is not a Cairn veth")

// DeletePodInterface deletes the pod's veth for DEL. It succeeds when the
// netns or the interface is already gone. It deletes only a veth whose peer
// is a Cairn host veth in the host namespace pointing back at it, and
// answers ErrNotOurs for anything else. Deleting the host end removes both.
func (k *Kernel) DeletePodInterface(netnsPath, ifName string) error {
	var pod netlink.Link
	err := inPod(netnsPath, func() error {
		link, err := netlink.LinkByName(ifName)
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("look up %s: %w", ifName, err)
		}
		pod = link
		return nil
	})
	if errors.Is(err, ErrNetnsNotFound) {
		return nil // the veth died with the namespace
	}
	if err != nil || pod == nil {
		return err
	}
	if pod.Type() != "veth" || pod.Attrs().ParentIndex == 0 {
		return fmt.Errorf("%s in %s is a %s: %w", ifName, netnsPath, pod.Type(), ErrNotOurs)
	}
	return k.inHost(func() error {
		host, err := netlink.LinkByIndex(pod.Attrs().ParentIndex)
		if isNotFound(err) {
			return fmt.Errorf("peer of %s is not in the host namespace: %w", ifName, ErrNotOurs)
		}
		if err != nil {
			return fmt.Errorf("look up peer of %s: %w", ifName, err)
		}
		// Both ends must point at each other, so an unrelated host link
		// that merely shares the index is never touched.
		if host.Type() != "veth" || !strings.HasPrefix(host.Attrs().Name, HostVethPrefix) ||
			host.Attrs().ParentIndex != pod.Attrs().Index {
			return fmt.Errorf("peer of %s is %s: %w", ifName, host.Attrs().Name, ErrNotOurs)
		}
		if err := netlink.LinkDel(host); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete %s: %w", host.Attrs().Name, err)
		}
		return nil
	})
}
