package peering

import v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"

// CheckConfig reports what of cfg the agents cannot apply as written (a
// prefixAdvertisement with an unknown or unsupported community), as
// Advertisements would find it; nil when everything applies.
func CheckConfig(cfg *v1.BGPConfiguration) error {
	_, err := prefixCommunities(cfg)
	return err
}
