package images

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// BuildTags keep golang.org/x/net/trace out of the binaries gRPC is in;
// without them it is in, so the test would catch a gRPC release that
// renamed the tag (the binaries would silently grow back by 40 MB).
func TestBuildTagsLeaveTraceOut(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command: %v", err)
	}
	const trace = "golang.org/x/net/trace"
	deps := func(tags string) []string {
		args := []string{"list", "-deps"}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.Command(goCmd, append(args, "./cmd/cairn-node", "./cmd/cairn-cni")...)
		cmd.Dir = "../.."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(cmd.Args[1:], " "), err)
		}
		return strings.Fields(string(out))
	}
	if !slices.Contains(deps(""), trace) {
		t.Fatalf("without build tags the binaries no longer import %s: BuildTags may be unneeded", trace)
	}
	if slices.Contains(deps(BuildTags), trace) {
		t.Errorf("with -tags %s the binaries still import %s", BuildTags, trace)
	}
}
