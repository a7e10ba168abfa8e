// Package ipam owns Cairn's address-management state model: the Store
// through which every IPAM object is read and written (always with
// compare-and-swap on resourceVersion), the typed errors callers branch on,
// object naming, block arithmetic, and the pure functions that mutate a
// block or say what a node announces. The allocator, garbage collector and
// audit live in sub-packages and share these pieces.
package ipam
