package deploy

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/cairn-net/cairn/internal/images"
)

// repoRoot is the repository, found from this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := images.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// rendered is what one kustomization renders to.
type rendered struct {
	dir  string
	objs []*unstructured.Unstructured
}

// render runs kustomize on dir (relative to the repository) as
// `kubectl kustomize` does.
func render(t *testing.T, dir string) rendered {
	t.Helper()
	path := filepath.Join(repoRoot(t), dir)
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), path)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	r := rendered{dir: dir}
	for _, res := range m.Resources() {
		obj, err := res.Map()
		if err != nil {
			t.Fatalf("kustomize %s: %v", dir, err)
		}
		r.objs = append(r.objs, &unstructured.Unstructured{Object: obj})
	}
	return r
}

// find returns the object of kind whose name is name (or, for a
// generated ConfigMap, starts with name and a hash).
func (r rendered) find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range r.objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("%s: no %s %s", r.dir, kind, name)
	return nil
}

func (r rendered) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// into converts an object to its typed form.
func into[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return out
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
