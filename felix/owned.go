package felix

import "github.com/cairn-net/cairn/felix/kernel"

// CountOwnRoutes counts the routes in the kernel tagged with felix's route
// protocol, both families. Called before Run, it tells whether an earlier
// run left its routes in place (an agent restart: felix adopts them, so
// the node keeps forwarding) or the kernel has none (first start, or a
// reboot).
func (f *Felix) CountOwnRoutes() (int, error) {
	var n int
	err := kernel.RetryDump(kernel.DefaultDumpAttempts, "routes", func() error {
		n = 0
		for _, fam := range []int{4, 6} {
			if err := f.k.RouteDump(fam, func(r *kernel.Route) {
				if r.Protocol == f.opts.RouteProtocol {
					n++
				}
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
