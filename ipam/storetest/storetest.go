// Package storetest is the contract every ipam.Store must meet, as tests
// that run against any implementation: the in-memory store in unit tests,
// the API-server store against a real kube-apiserver.
package storetest

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// Run runs the contract against store, which must be empty of the names
// used here ("storetest-*").
func Run(t *testing.T, store ipam.Store) {
	ctx := context.Background()
	blocks := store.Blocks()
	name := "storetest-10-99-0-0-30"
	b := &v1.IPAMBlock{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.IPAMBlockSpec{CIDR: "10.99.0.0/30", Affinity: "node:x"}}

	created, err := blocks.Create(ctx, b)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.ResourceVersion == "" {
		t.Fatal("create returned no resourceVersion")
	}
	if _, err := blocks.Create(ctx, b); !ipam.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want ErrAlreadyExists", err)
	}
	if _, err := blocks.Get(ctx, "storetest-missing"); !ipam.IsNotFound(err) {
		t.Errorf("get missing: %v, want ErrNotFound", err)
	}

	// Compare-and-swap: the first update wins, the second (same base
	// version) conflicts.
	u1 := created.DeepCopy()
	u1.Spec.Sequence = 1
	updated, err := blocks.Update(ctx, u1)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.ResourceVersion == created.ResourceVersion {
		t.Error("update did not change the resourceVersion")
	}
	u2 := created.DeepCopy()
	u2.Spec.Sequence = 2
	if _, err := blocks.Update(ctx, u2); !ipam.IsConflict(err) {
		t.Errorf("stale update: %v, want ErrConflict", err)
	}
	got, err := blocks.Get(ctx, name)
	if err != nil || got.Spec.Sequence != 1 {
		t.Errorf("after the conflict: %+v, %v; want sequence 1", got, err)
	}
	// Returned objects are copies.
	got.Spec.Sequence = 42
	if again, _ := blocks.Get(ctx, name); again.Spec.Sequence != 1 {
		t.Error("modifying a returned object changed the store")
	}
	missing := updated.DeepCopy()
	missing.Name = "storetest-missing"
	if _, err := blocks.Update(ctx, missing); !ipam.IsNotFound(err) && !ipam.IsConflict(err) {
		t.Errorf("update of a missing object: %v, want ErrNotFound or ErrConflict", err)
	}

	list, err := blocks.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range list {
		found = found || l.Name == name
	}
	if !found {
		t.Error("list lacks the block")
	}

	if err := blocks.Delete(ctx, name, created.ResourceVersion); !ipam.IsConflict(err) {
		t.Errorf("delete with a stale resourceVersion: %v, want ErrConflict", err)
	}
	if err := blocks.Delete(ctx, name, updated.ResourceVersion); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := blocks.Delete(ctx, name, ""); !ipam.IsNotFound(err) {
		t.Errorf("delete again: %v, want ErrNotFound", err)
	}

	// Pool status is written only through UpdatePoolStatus.
	pools := store.Pools()
	p, err := pools.Create(ctx, &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "storetest-pool"}, Spec: v1.IPPoolSpec{CIDR: "10.99.0.0/24", BlockSize: 28}})
	if err != nil {
		t.Fatalf("create pool: %v", err)
	}
	p.Status.Blocks = 3
	withStatus, err := store.UpdatePoolStatus(ctx, p)
	if err != nil {
		t.Fatalf("update pool status: %v", err)
	}
	if withStatus.Status.Blocks != 3 {
		t.Errorf("status not written: %+v", withStatus.Status)
	}
	withStatus.Spec.Disabled = true
	withStatus.Status.Blocks = 7
	spec, err := pools.Update(ctx, withStatus)
	if err != nil {
		t.Fatalf("update pool: %v", err)
	}
	if !spec.Spec.Disabled || spec.Status.Blocks != 3 {
		t.Errorf("update of the main resource: disabled %v blocks %d, want true and 3 (status untouched)", spec.Spec.Disabled, spec.Status.Blocks)
	}
	if err := pools.Delete(ctx, p.Name, ""); err != nil {
		t.Errorf("delete pool: %v", err)
	}
}
