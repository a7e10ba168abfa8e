package ctl

import (
	"bytes"
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam/allocator"
	"github.com/cairn-net/cairn/ipam/memstore"
)

func run(t *testing.T, s *memstore.Store, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	c := &cmd{store: s, out: &out, errw: &errw, stdin: strings.NewReader(stdin)}
	code := runWith(context.Background(), c, args)
	return code, out.String(), errw.String()
}

func TestCheckAndReleaseRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	if _, err := s.Pools().Create(ctx, &v1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1.IPPoolSpec{CIDR: "10.0.0.0/24", BlockSize: 28}}); err != nil {
		t.Fatal(err)
	}
	a, _ := allocator.New(s, allocator.Options{Node: "n1"})
	got, err := a.AutoAssign(ctx, allocator.Request{HandleID: "c1", IPv4: 1})
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := run(t, s, "", "check"); code != ExitOK || !strings.Contains(out, "no problems") {
		t.Fatalf("check of a clean store: %d %q", code, out)
	}
	// A handle that holds nothing.
	if _, err := s.Handles().Create(ctx, &v1.IPAMHandle{ObjectMeta: metav1.ObjectMeta{Name: "stray"}, Spec: v1.IPAMHandleSpec{HandleID: "stray"}}); err != nil {
		t.Fatal(err)
	}
	code, report, _ := run(t, s, "", "check", "-o", "json")
	if code != ExitProblems || !strings.Contains(report, `"stray"`) {
		t.Fatalf("check: %d %s", code, report)
	}
	if code, out, errs := run(t, s, report, "release", "--report", "-"); code != ExitOK || !strings.Contains(out, "deleted handle stray") {
		t.Fatalf("release --report: %d %q %q", code, out, errs)
	}
	if code, _, _ := run(t, s, "", "check"); code != ExitOK {
		t.Fatalf("check after repair: %d", code)
	}
	if code, out, _ := run(t, s, "", "release", got[0].Addr().String()); code != ExitOK || !strings.Contains(out, "released "+got[0].Addr().String()) {
		t.Fatalf("release by address: %d %q", code, out)
	}
	if code, out, _ := run(t, s, "", "show", "--addresses"); code != ExitOK || strings.Contains(out, got[0].Addr().String()+"\t") {
		t.Fatalf("show after release: %d %q", code, out)
	}
	if code, _, _ := run(t, s, "", "release"); code != ExitError {
		t.Errorf("release without arguments: %d, want usage error", code)
	}
	if code, _, _ := run(t, s, "", "release", "10.0.0.300"); code != ExitError {
		t.Errorf("release of a bad address: %d, want usage error", code)
	}
}
