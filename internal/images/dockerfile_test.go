package images

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The repository's Dockerfile builds the cairn image for Docker users; it
// must put into it exactly what CairnSpec does.
func TestDockerfileBuildsTheCairnImage(t *testing.T) {
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseDockerfile(string(b))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, d := range diffSpecs(CairnSpec(), got) {
		t.Error(d)
	}
}

// The comparison itself catches each kind of difference.
func TestDockerfileDifferencesAreFound(t *testing.T) {
	base := `FROM golang:1 AS build
RUN CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -o /out/ ./cmd/cairn-node ./cmd/cairn-cni ./cmd/cairnctl
FROM scratch
COPY --from=build --chmod=0755 /out/cairn-node /out/cairn-cni /out/cairnctl /usr/local/bin/
COPY --chmod=0644 deploy/node/10-cairn.conflist /etc/cairn/10-cairn.conflist
ENV PATH=/usr/local/bin
USER 0:0
WORKDIR /
ENTRYPOINT ["/usr/local/bin/cairn-node"]
`
	if d := mustDiff(t, base); len(d) != 0 {
		t.Fatalf("the reference Dockerfile differs: %v", d)
	}
	for name, edit := range map[string][2]string{
		"a binary left out":        {" /out/cairnctl /usr", " /usr"},
		"a binary elsewhere":       {"/usr/local/bin/\n", "/bin/\n"},
		"a mode":                   {"--chmod=0644", "--chmod=0600"},
		"the conflist's source":    {"COPY --chmod=0644 deploy/node/10", "COPY --chmod=0644 deploy/10"},
		"the entrypoint":           {`["/usr/local/bin/cairn-node"]`, `["/usr/local/bin/cairnctl"]`},
		"the user":                 {"USER 0:0", "USER 1000:1000"},
		"the environment":          {"ENV PATH=/usr/local/bin", "ENV PATH=/usr/local/bin FOO=1"},
		"the working directory":    {"WORKDIR /\n", "WORKDIR /tmp\n"},
		"a command":                {"ENTRYPOINT", "CMD [\"-v\"]\nENTRYPOINT"},
		"a package built with cgo": {"CGO_ENABLED=0 ", ""},
		"no build tags":            {"-tags grpcnotrace ", ""},
		"other build tags":         {"-tags grpcnotrace ", "-tags netgo "},
		"another package":          {"./cmd/cairn-cni ./cmd/cairnctl", "./cmd/cairn-lab ./cmd/cairnctl"},
	} {
		df := strings.Replace(base, edit[0], edit[1], 1)
		if df == base {
			t.Fatalf("%s: edit %q not applied", name, edit[0])
		}
		d, err := diffDockerfile(df)
		if err == nil && len(d) == 0 {
			t.Errorf("%s: no difference found", name)
		}
	}
	for name, df := range map[string]string{
		"an instruction the test does not read": base + "RUN true\n",
		"a base image":                          strings.Replace(base, "FROM scratch", "FROM debian", 1),
		"an owner":                              strings.Replace(base, "COPY --chmod=0644", "COPY --chown=1:1 --chmod=0644", 1),
		"a shell-form entrypoint":               strings.Replace(base, `["/usr/local/bin/cairn-node"]`, "/usr/local/bin/cairn-node", 1),
	} {
		if _, err := parseDockerfile(df); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

func mustDiff(t *testing.T, df string) []string {
	t.Helper()
	d, err := diffDockerfile(df)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func diffDockerfile(df string) ([]string, error) {
	s, err := parseDockerfile(df)
	if err != nil {
		return nil, err
	}
	return diffSpecs(CairnSpec(), s), nil
}

// diffSpecs lists every difference between what two specs put into an
// image.
func diffSpecs(want, got Spec) []string {
	var d []string
	wf, gf := filesByPath(want), filesByPath(got)
	for _, p := range slices.Sorted(mapKeys(wf, gf)) {
		w, wok := wf[p]
		g, gok := gf[p]
		switch {
		case !gok:
			d = append(d, fmt.Sprintf("%s: in internal/images, not in the Dockerfile", p))
		case !wok:
			d = append(d, fmt.Sprintf("%s: in the Dockerfile, not in internal/images", p))
		case w != g:
			d = append(d, fmt.Sprintf("%s: Dockerfile has %+v, internal/images %+v", p, g, w))
		}
	}
	for _, c := range []struct {
		what      string
		want, got []string
	}{
		{"ENTRYPOINT", want.Config.Entrypoint, got.Config.Entrypoint},
		{"CMD", want.Config.Cmd, got.Config.Cmd},
		{"ENV", want.Config.Env, got.Config.Env},
		{"USER", []string{want.Config.User}, []string{got.Config.User}},
		{"WORKDIR", []string{want.Config.WorkingDir}, []string{got.Config.WorkingDir}},
	} {
		if !slices.Equal(c.want, c.got) {
			d = append(d, fmt.Sprintf("%s: Dockerfile has %q, internal/images %q", c.what, c.got, c.want))
		}
	}
	return d
}

func filesByPath(s Spec) map[string]File {
	m := map[string]File{}
	for _, f := range s.Files {
		m[f.Path] = f
	}
	return m
}

func mapKeys(ms ...map[string]File) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

func instructions(df string) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(strings.NewReader(df))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(l, `\`) {
			cur.WriteString(strings.TrimSuffix(l, `\`) + " ")
			continue
		}
		cur.WriteString(l)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// parseDockerfile reads what the Dockerfile's final stage puts into the
// image, following COPY --from to the binaries its build stages make. It
// refuses what it cannot compare.
func parseDockerfile(df string) (Spec, error) {
	stages := map[string]map[string]string{} // stage → output file → package
	var stage string
	var final []instruction
	for _, in := range instructions(df) {
		switch in.cmd {
		case "FROM":
			f := strings.Fields(in.args)
			stage, final = "", nil
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stage = f[2]
				stages[stage] = map[string]string{}
			} else if len(f) != 1 || f[0] != "scratch" {
				return Spec{}, fmt.Errorf("line %d: the final stage must be FROM scratch (internal/images has no base), got %q", in.line, in.args)
			}
		case "RUN":
			if stage == "" {
				return Spec{}, fmt.Errorf("line %d: RUN in the final stage changes the image in ways this test cannot compare", in.line)
			}
			if err := goBuildOutputs(in.args, stages[stage]); err != nil {
				return Spec{}, fmt.Errorf("line %d: %w", in.line, err)
			}
		default:
			if stage == "" {
				final = append(final, in)
			}
		}
	}
	return finalStage(final, stages)
}

// goBuildOutputs records what a "go build -o DIR/ PKG..." run makes,
// when it builds static and with BuildTags.
func goBuildOutputs(run string, outputs map[string]string) error {
	f := strings.Fields(run)
	i := slices.Index(f, "build")
	if i < 1 || f[i-1] != "go" {
		return nil
	}
	if !slices.Contains(f[:i], "CGO_ENABLED=0") || !slices.Contains(f, "-trimpath") {
		return fmt.Errorf("go build without CGO_ENABLED=0 and -trimpath: %q", run)
	}
	if t := slices.Index(f, "-tags"); t < 0 || t+1 >= len(f) || f[t+1] != BuildTags {
		return fmt.Errorf("go build without -tags %s: %q", BuildTags, run)
	}
	o := slices.Index(f, "-o")
	if o < 0 || o+1 >= len(f) || !strings.HasSuffix(f[o+1], "/") {
		return fmt.Errorf("go build without -o DIR/: %q", run)
	}
	for _, a := range f[i+1:] {
		if strings.HasPrefix(a, "./") {
			outputs[path.Join(f[o+1], path.Base(a))] = a
		}
	}
	return nil
}

func finalStage(ins []instruction, stages map[string]map[string]string) (Spec, error) {
	var s Spec
	for _, in := range ins {
		var err error
		switch in.cmd {
		case "COPY":
			var files []File
			files, err = parseCopy(in.args, stages)
			s.Files = append(s.Files, files...)
		case "ENV":
			s.Config.Env, err = parseEnv(in.args, s.Config.Env)
		case "USER":
			s.Config.User = in.args
		case "WORKDIR":
			s.Config.WorkingDir = in.args
		case "ENTRYPOINT":
			err = json.Unmarshal([]byte(in.args), &s.Config.Entrypoint)
		case "CMD":
			err = json.Unmarshal([]byte(in.args), &s.Config.Cmd)
		case "ARG":
		default:
			err = fmt.Errorf("%s in the final stage: this test does not compare it", in.cmd)
		}
		if err == nil && strings.Contains(in.args, "$") && in.cmd != "ARG" {
			err = fmt.Errorf("variables in the final stage are not compared: %q", in.args)
		}
		if err != nil {
			return s, fmt.Errorf("line %d: %s: %w", in.line, in.cmd, err)
		}
	}
	return s, nil
}

func parseCopy(args string, stages map[string]map[string]string) ([]File, error) {
	f := strings.Fields(args)
	var from string
	mode := fs.FileMode(0)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		switch k {
		case "from":
			from = v
		case "chmod":
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return nil, fmt.Errorf("--chmod=%s: %w", v, err)
			}
			mode = fs.FileMode(m)
		default:
			return nil, fmt.Errorf("--%s: not compared (files are root's, modes set with --chmod)", k)
		}
		f = f[1:]
	}
	if mode == 0 {
		return nil, fmt.Errorf("%q: no --chmod (a file's mode must not depend on the build machine)", args)
	}
	if len(f) < 2 {
		return nil, fmt.Errorf("%q: want sources and a destination", args)
	}
	srcs, dst := f[:len(f)-1], f[len(f)-1]
	var out []File
	for _, src := range srcs {
		p := dst
		if strings.HasSuffix(dst, "/") || len(srcs) > 1 {
			p = path.Join(dst, path.Base(src))
		}
		file := File{Path: p, Mode: mode}
		if from == "" {
			file.Source.RepoFile = path.Clean(src)
		} else if pkg, ok := stages[from][src]; ok {
			file.Source.Package = pkg
		} else {
			return nil, fmt.Errorf("%s from stage %q: no go build there makes it", src, from)
		}
		out = append(out, file)
	}
	return out, nil
}

func parseEnv(args string, env []string) ([]string, error) {
	for _, kv := range strings.Fields(args) {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want KEY=value", kv)
		}
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		env = append(env, kv)
	}
	return env, nil
}
