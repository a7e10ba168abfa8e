package speaker

import (
	"net/netip"
	"slices"
)

// normalizeImportFilter turns the allowed prefixes (IP pools) into a sorted,
// masked, deduplicated list. Entries that could let everything in (a /0) or
// that are not prefixes are dropped and returned so the caller can log them.
func normalizeImportFilter(allowed []netip.Prefix) (kept, dropped []netip.Prefix) {
	for _, p := range allowed {
		if !p.IsValid() || p.Bits() == 0 {
			dropped = append(dropped, p)
			continue
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			if !p.IsValid() || p.Bits() <= 0 {
				dropped = append(dropped, p)
				continue
			}
		}
		kept = append(kept, p.Masked())
	}
	slices.SortFunc(kept, netip.Prefix.Compare)
	return slices.Compact(kept), dropped
}

// importable reports whether a learned prefix may be accepted: it must lie
// within one of the allowed prefixes (same family, at least as long) and is
// never a default route. It mirrors the GoBGP import policy built by
// buildPolicy and is applied again to every learned path, so a filter change
// takes effect before GoBGP's soft reset has run.
func importable(p netip.Prefix, allowed []netip.Prefix) bool {
	if !p.IsValid() || p.Bits() == 0 {
		return false
	}
	p = p.Masked()
	for _, a := range allowed {
		if a.Addr().Is4() == p.Addr().Is4() && a.Bits() <= p.Bits() && a.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
