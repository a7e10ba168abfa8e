package agentv1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cairn-net/cairn/internal/testenv"
)

// TestGeneratedCodeIsFresh regenerates the Go code from agent.proto in a
// copy and compares it with the committed files.
func TestGeneratedCodeIsFresh(t *testing.T) {
	// Builds the pinned protoc generators: not for -short; under CI a
	// missing protoc fails (`make deps` installs it).
	testenv.Require(t, testenv.Binary("protoc"))
	tmp := t.TempDir()
	for _, name := range []string{"agent.proto", "generate.sh"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("bash", filepath.Join(tmp, "generate.sh")).CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, out)
	}
	for _, name := range []string{"agent.pb.go", "agent_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("%s is stale: run apis/agent/v1/generate.sh (or make generate) and commit the result", name)
		}
	}
}
