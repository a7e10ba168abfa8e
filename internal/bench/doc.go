// Package bench is what `make bench` runs (cmd/cairn-bench): sections that
// measure Cairn against the physical limit and its anchors
// (../shared/reference.md) in one run on this machine, and a report of
// them (report.md, charts, the raw numbers as JSON).
//
// The package owns:
//   - the result model (result.go): a row is one measured figure beside
//     its anchor and its goal; ratios are medians of per-round ratios,
//     rounds interleaved so that a busy machine slows both sides alike;
//   - the sections (one file each) and the order they run in (sections.go);
//   - the report (report.go, chart.go).
//
// Nothing here fails on a time: a figure below its goal is reported as
// such. A section fails only when its machinery does (a lab that does not
// come up, a tool that is missing), and the report says so.
//
// The labs, the control plane and the tests' benchmarks it drives are
// reused, not copied: internal/lab brings the labs up, and the felix and
// IPAM sections run the packages' own Go benchmarks and read their output.
package bench
