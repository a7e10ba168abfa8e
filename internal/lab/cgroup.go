package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A real node's processes are found through cgroups, not through its
// network namespace: containerd's shims re-parent themselves and pod
// containers live in namespaces of their own. Each node gets one cgroup,
// /<node netns name>, in every hierarchy: the kubelet's cgroupRoot (pods go
// below it) and, in "daemons", the node helper with containerd, the kubelet
// and the shims. Down kills what is in that tree and removes it.

// cgroupMountsFile lists the mounts, cgroup hierarchies among them.
const cgroupMountsFile = "/proc/self/mountinfo"

// cgroupDaemons is the child of a node's cgroup holding its daemons.
const cgroupDaemons = "daemons"

// hierarchy is one mounted cgroup hierarchy.
type hierarchy struct {
	// Mount is where it is mounted.
	Mount string
	// Key names it as /proc/<pid>/cgroup does: its v1 controllers
	// ("cpu,cpuacct", "name=systemd"), or "" for the v2 hierarchy.
	Key string
}

// parseCgroupMounts returns the cgroup v1 and v2 hierarchies of a
// mountinfo listing, sorted by mount point.
func parseCgroupMounts(r io.Reader) ([]hierarchy, error) {
	var out []hierarchy
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// "36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:12 - cgroup cgroup rw,cpu"
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 {
			continue
		}
		switch rf[0] {
		case "cgroup2":
			out = append(out, hierarchy{Mount: lf[4]})
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(rf[2], ",") {
				if o != "rw" && o != "ro" && !strings.HasPrefix(o, "release_agent=") && o != "clone_children" && o != "noprefix" && o != "xattr" {
					ctrls = append(ctrls, o)
				}
			}
			sort.Strings(ctrls)
			out = append(out, hierarchy{Mount: lf[4], Key: strings.Join(ctrls, ",")})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mount < out[j].Mount })
	return out, nil
}

// parseProcCgroup maps a /proc/<pid>/cgroup listing to the process's
// cgroup path by hierarchy key (see hierarchy.Key).
func parseProcCgroup(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// "4:memory:/user.slice", "1:name=systemd:/", "0::/"
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		ctrls := strings.Split(f[1], ",")
		sort.Strings(ctrls)
		out[strings.Join(ctrls, ",")] = f[2]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return out, nil
}

func cgroupHierarchies() ([]hierarchy, error) {
	f, err := os.Open(cgroupMountsFile)
	if err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	defer f.Close()
	return parseCgroupMounts(f)
}

func cgroupMounts() ([]string, error) {
	hs, err := cgroupHierarchies()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Mount
	}
	return out, nil
}

// validNodeCgroup guards every cgroup operation: only a top-level cgroup
// named like a lab namespace is ever created, emptied or removed.
func validNodeCgroup(rel string) error {
	name := strings.TrimPrefix(rel, "/")
	if name == rel || name == "" || strings.Contains(name, "/") || !strings.HasPrefix(name, NSPrefix) || name == ".." {
		return fmt.Errorf("cgroup %q is not a lab node's cgroup (/%s...)", rel, NSPrefix)
	}
	return nil
}

// createNodeCgroup makes /<name> and /<name>/daemons in every hierarchy.
// A new cgroup v1 cpuset starts with no CPUs and no memory nodes, and no
// process may join it: it gets its parent's.
func createNodeCgroup(rel string) error {
	if err := validNodeCgroup(rel); err != nil {
		return err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		for _, dir := range []string{filepath.Join(m, rel), filepath.Join(m, rel, cgroupDaemons)} {
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create cgroup %s: %w", dir, err)
			}
			if err := inheritCpuset(dir); err != nil {
				return err
			}
		}
	}
	return nil
}

func inheritCpuset(dir string) error {
	for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
		own := filepath.Join(dir, file)
		cur, err := os.ReadFile(own)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not a v1 cpuset hierarchy
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", own, err)
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), file))
		if err != nil {
			return fmt.Errorf("read the parent's %s: %w", file, err)
		}
		if err := os.WriteFile(own, parent, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", own, err)
		}
	}
	return nil
}

// joinCgroups moves the calling process into <rel>/daemons of the
// hierarchies where it sits at the root cgroup, so that everything it
// starts is found there. A hierarchy where something placed it elsewhere
// (a memory cgroup of whatever runs us) is left alone: one hierarchy is
// enough to find the daemons, and pods are placed by the kubelet anyway.
func joinCgroups(rel string) error {
	if err := validNodeCgroup(rel); err != nil {
		return err
	}
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return fmt.Errorf("read own cgroups: %w", err)
	}
	own, err := parseProcCgroup(f)
	f.Close()
	if err != nil {
		return err
	}
	joined := 0
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, h := range hs {
		if own[h.Key] != "/" {
			continue
		}
		procs := filepath.Join(h.Mount, rel, cgroupDaemons, "cgroup.procs")
		if err := os.WriteFile(procs, pid, 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", procs, err)
		}
		joined++
	}
	if joined == 0 {
		return fmt.Errorf("join cgroup %s: this process sits below the root of every hierarchy", rel)
	}
	return nil
}

// cgroupPIDs lists every process in rel and below, in every hierarchy.
func cgroupPIDs(mounts []string, rel string) ([]int, error) {
	seen := map[int]bool{}
	for _, m := range mounts {
		root := filepath.Join(m, rel)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			if err != nil {
				return err
			}
			if d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					seen[pid] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list processes of cgroup %s: %w", root, err)
		}
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out, nil
}

// removeNodeCgroup SIGKILLs every process in the node's cgroup tree until
// none is left (a process may fork while we kill), then removes the
// directories, deepest first, in every hierarchy. A cgroup that does not
// exist is not an error.
func removeNodeCgroup(rel string, timeout time.Duration) error {
	if err := validNodeCgroup(rel); err != nil {
		return err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		pids, err := cgroupPIDs(mounts, rel)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in cgroup %s survive SIGKILL", pids, rel)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // foreign pids have no wait handle: poll until the cgroup is empty
	}
	var errs []error
	for _, m := range mounts {
		errs = append(errs, removeCgroupDirs(filepath.Join(m, rel), deadline))
	}
	return errors.Join(errs...)
}

// removeCgroupDirs removes a cgroup directory and its children, deepest
// first. A cgroup whose last process just died may still be busy for a
// moment (EBUSY): that is retried until the deadline.
func removeCgroupDirs(root string, deadline time.Time) error {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk cgroup %s: %w", root, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		for {
			err := syscall.Rmdir(dirs[i])
			if err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				return fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
			}
			time.Sleep(20 * time.Millisecond) // the kernel frees a dead cgroup asynchronously
		}
	}
	return nil
}

// nodeCgroupsOnMachine lists the top-level cgroups named like a lab's
// namespaces, in any hierarchy: what Sweep removes when a lab's state is lost.
func nodeCgroupsOnMachine() ([]string, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, m := range mounts {
		entries, err := os.ReadDir(m)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), NSPrefix) {
				seen["/"+e.Name()] = true
			}
		}
	}
	var out []string
	for rel := range seen {
		out = append(out, rel)
	}
	sort.Strings(out)
	return out, nil
}
