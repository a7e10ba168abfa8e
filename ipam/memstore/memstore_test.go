package memstore_test

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
	"github.com/cairn-net/cairn/ipam/memstore"
	"github.com/cairn-net/cairn/ipam/storetest"
)

func TestContract(t *testing.T) { storetest.Run(t, memstore.New()) }

func TestFaults(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	h := func(name string) *v1.IPAMHandle {
		return &v1.IPAMHandle{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.IPAMHandleSpec{HandleID: name}}
	}
	boom := errors.New("boom")
	s.Inject(memstore.Fault{Kind: memstore.Handles, Op: memstore.Create, Skip: 1, Times: 2, Err: boom})
	lost := s.Inject(memstore.Fault{Kind: memstore.Handles, Op: memstore.Create, Name: "lost", Err: boom, Applied: true})
	results := []error{}
	for _, n := range []string{"a", "b", "c", "d"} {
		_, err := s.Handles().Create(ctx, h(n))
		results = append(results, err)
	}
	if results[0] != nil || !errors.Is(results[1], boom) || !errors.Is(results[2], boom) || results[3] != nil {
		t.Errorf("skip 1, fail 2: got %v", results)
	}
	if _, err := s.Handles().Create(ctx, h("lost")); !errors.Is(err, boom) {
		t.Errorf("applied fault: %v", err)
	}
	if _, err := s.Handles().Get(ctx, "lost"); err != nil {
		t.Errorf("an applied fault must still write: %v", err)
	}
	select {
	case <-lost.Fired:
	default:
		t.Error("Fired not closed")
	}
	if _, err := s.Handles().Get(ctx, "b"); !ipam.IsNotFound(err) {
		t.Errorf("a failed create wrote: %v", err)
	}
	s.FailNext(memstore.Handles, memstore.Delete, 1, nil)
	if err := s.Handles().Delete(ctx, "a", ""); !ipam.IsConflict(err) {
		t.Errorf("default fault error: %v, want a conflict", err)
	}
	every := s.Inject(memstore.Fault{Kind: memstore.Handles, Op: memstore.Get, Every: 3, Times: -1})
	fails := 0
	for range 9 {
		if _, err := s.Handles().Get(ctx, "a"); err != nil {
			fails++
		}
	}
	if fails != 3 || s.Hits(every) != 3 {
		t.Errorf("every 3rd of 9 reads: %d failed", fails)
	}
}
