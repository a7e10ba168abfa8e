// Package apis tests Cairn's CRDs against a real kube-apiserver: they
// install and become Established, objects round-trip, the API server
// rejects invalid objects with messages naming the field, and defaults are
// applied on create.
package apis
