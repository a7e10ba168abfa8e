package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	cairnlisters "github.com/cairn-net/cairn/apis/client/listers/cairn/v1alpha1"
	"github.com/cairn-net/cairn/apis/kubecore/kubecoretest"
	"github.com/cairn-net/cairn/bgp/speaker"
)

// secretsAPI is a fake API server for Secrets whose reads can be made to
// fail (per Secret name, or all of them) and whose open watches can be
// broken, so an informer has to list again.
type secretsAPI struct {
	kube *fake.Clientset

	mu      sync.Mutex
	failAll bool
	fail    map[string]bool // by Secret name
	watches []*breakableWatch
}

func newSecretsAPI(objs ...runtime.Object) *secretsAPI {
	api := &secretsAPI{kube: fake.NewClientset(objs...), fail: map[string]bool{}}
	unavailable := apierrors.NewServiceUnavailable("the test made the API server fail")
	api.kube.PrependReactor("list", "secrets", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if api.failing(a.(clienttesting.ListAction).GetListRestrictions().Fields.String()) {
			return true, nil, unavailable
		}
		return false, nil, nil
	})
	api.kube.PrependWatchReactor("secrets", func(a clienttesting.Action) (bool, watch.Interface, error) {
		wa := a.(clienttesting.WatchActionImpl)
		if api.failing(wa.GetWatchRestrictions().Fields.String()) {
			return true, nil, unavailable
		}
		inner, err := api.kube.Tracker().Watch(a.GetResource(), a.GetNamespace(), wa.ListOptions)
		if err != nil {
			return true, nil, err
		}
		w := newBreakableWatch(inner)
		api.mu.Lock()
		api.watches = append(api.watches, w)
		api.mu.Unlock()
		return true, w, nil
	})
	return api
}

// failing reports whether a read restricted by the field selector sel
// ("metadata.name=<name>") must fail.
func (api *secretsAPI) failing(sel string) bool {
	api.mu.Lock()
	defer api.mu.Unlock()
	name, _ := strings.CutPrefix(sel, "metadata.name=")
	return api.failAll || api.fail[name]
}

func (api *secretsAPI) setFail(name string, fail bool) {
	api.mu.Lock()
	api.fail[name] = fail
	api.mu.Unlock()
}

// outage makes every Secret read fail and breaks the open watches, as an
// API server that goes away does; end brings it back.
func (api *secretsAPI) outage() (end func()) {
	api.mu.Lock()
	api.failAll = true
	ws := api.watches
	api.watches = nil
	api.mu.Unlock()
	for _, w := range ws {
		w.Stop()
	}
	return func() {
		api.mu.Lock()
		api.failAll = false
		api.mu.Unlock()
	}
}

// breakableWatch forwards a watch until stopped, then closes its channel.
type breakableWatch struct {
	inner watch.Interface
	out   chan watch.Event
	stop  chan struct{}
	once  sync.Once
}

func newBreakableWatch(inner watch.Interface) *breakableWatch {
	w := &breakableWatch{inner: inner, out: make(chan watch.Event), stop: make(chan struct{})}
	go func() {
		defer close(w.out)
		defer inner.Stop()
		for {
			select {
			case <-w.stop:
				return
			case ev, ok := <-inner.ResultChan():
				if !ok {
					return
				}
				select {
				case w.out <- ev:
				case <-w.stop:
					return
				}
			}
		}
	}()
	return w
}

func (w *breakableWatch) Stop()                          { w.once.Do(func() { close(w.stop) }) }
func (w *breakableWatch) ResultChan() <-chan watch.Event { return w.out }

// peerLog is a speaker that keeps every peer set it is given.
type peerLog struct {
	fakeSpeaker
	mu   sync.Mutex
	sets [][]speaker.Peer
}

func (s *peerLog) SetPeers(p []speaker.Peer) error {
	s.mu.Lock()
	s.sets = append(s.sets, slices.Clone(p))
	s.mu.Unlock()
	return s.fakeSpeaker.SetPeers(p)
}

// history returns the peer sets given so far, and forgets them.
func (s *peerLog) history() [][]speaker.Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.sets
	s.sets = nil
	return h
}

// summary shows a peer set as name=password pairs.
func summary(peers []speaker.Peer) string {
	var out []string
	for _, p := range peers {
		out = append(out, p.Name+"="+p.Password)
	}
	return strings.Join(out, ",")
}

func secret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "cairn-system", Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func password(name, key string) *v1.BGPPassword {
	return &v1.BGPPassword{SecretKeyRef: &v1.SecretKeyRef{Name: name, Key: key}}
}

// secretWorld is node1's controller with a mesh to node2 and a ToR peer,
// both with passwords from Secrets, over the fake Secrets API.
type secretWorld struct {
	t       *testing.T
	ctx     context.Context
	api     *secretsAPI
	configs cache.Indexer
	peers   cache.Indexer
	spk     *peerLog
	c       *controller
}

func newSecretWorld(t *testing.T, secrets ...runtime.Object) *secretWorld {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &secretWorld{t: t, ctx: ctx, api: newSecretsAPI(secrets...), spk: &peerLog{},
		configs: indexer(&v1.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1.BGPConfigurationSpec{NodeMeshPassword: password("mesh", "password")}}),
		peers: indexer(&v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1.BGPPeerSpec{PeerIP: "172.30.1.1", ASNumber: 65001,
			Password: password("bgp", "tor")}}),
	}
	w.c = &controller{
		log: slog.New(slog.DiscardHandler), nodeName: "node1", nodeAddr: netip.MustParseAddr("172.30.1.11"), queue: newQueue(),
		listers: listers{
			nodes: corelisters.NewNodeLister(indexer(node("node1", "172.30.1.11"), node("node2", "172.30.1.12"))),
			pools: cairnlisters.NewIPPoolLister(indexer()), configs: cairnlisters.NewBGPConfigurationLister(w.configs),
			peers: cairnlisters.NewBGPPeerLister(w.peers), filters: cairnlisters.NewBGPFilterLister(indexer()), blocks: cairnlisters.NewIPAMBlockLister(indexer()),
			affinities: cairnlisters.NewBlockAffinityLister(indexer()),
		},
		speaker: w.spk, dataplane: &recordingDataplane{},
	}
	w.c.secrets = newSecretWatch(kubecoretest.From(w.api.kube), "cairn-system", func() {})
	return w
}

// syncUntil syncs until the speaker has want (name=password pairs), and
// fails the test if any peer set given on the way is not allowed.
func (w *secretWorld) syncUntil(what, want string, allowed func(string) bool) {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_ = w.c.sync(w.ctx)
		var last string
		for _, set := range w.spk.history() {
			last = summary(set)
			if !allowed(last) {
				w.t.Fatalf("%s: the speaker was given %s", what, last)
			}
		}
		if last == want {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: the speaker has %q, want %q", what, last, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// syncHolds syncs rounds times while reads fail and checks that the
// speaker keeps exactly want, and that the sync reports the problem.
func (w *secretWorld) syncHolds(what, want string, rounds int) {
	w.t.Helper()
	for i := 0; i < rounds; i++ {
		err := w.c.sync(w.ctx)
		for _, set := range w.spk.history() {
			if got := summary(set); got != want {
				w.t.Fatalf("%s: the speaker was given %s, want %s kept", what, got, want)
			}
		}
		if err == nil {
			w.t.Errorf("%s: sync reported no problem while a password cannot be read", what)
		}
	}
}

func only(allowed ...string) func(string) bool {
	return func(s string) bool { return slices.Contains(allowed, s) }
}

// goodPeers is both sessions with their passwords (sorted by address: the
// ToR, 172.30.1.1, first).
const goodPeers = "peer:tor=t1,mesh:node2=m1"

// TestSecretReadFailuresKeepPasswords: a password that cannot be read for
// now (the API server slow or failing, a Secret not read yet) never changes
// a session: no mesh session without its password, no ToR session dropped.
// Only a Secret that is really deleted, or loses its key, changes a peer.
func TestSecretReadFailuresKeepPasswords(t *testing.T) {
	t.Run("first read slow", func(t *testing.T) {
		w := newSecretWorld(t, secret("mesh", map[string]string{"password": "m1"}), secret("bgp", map[string]string{"tor": "t1"}))
		w.api.setFail("mesh", true)
		w.api.setFail("bgp", true)
		// No session may start without the password it is configured
		// with: they come up once it is read.
		w.syncHolds("Secrets not readable yet", "", 2)
		w.api.setFail("mesh", false)
		w.api.setFail("bgp", false)
		w.syncUntil("Secrets readable", goodPeers, only("", "peer:tor=t1", "mesh:node2=m1", goodPeers))
	})
	t.Run("API server outage after a good read", func(t *testing.T) {
		w := newSecretWorld(t, secret("mesh", map[string]string{"password": "m1"}), secret("bgp", map[string]string{"tor": "t1"}))
		w.syncUntil("start", goodPeers, only("", "peer:tor=t1", "mesh:node2=m1", goodPeers))
		end := w.api.outage()
		for i := 0; i < 5; i++ {
			_ = w.c.sync(w.ctx)
			for _, set := range w.spk.history() {
				if got := summary(set); got != goodPeers {
					t.Fatalf("during the outage the speaker was given %s, want %s kept", got, goodPeers)
				}
			}
		}
		end()
		w.syncUntil("after the outage", goodPeers, only(goodPeers))
	})
	t.Run("moved to Secrets not readable yet", func(t *testing.T) {
		w := newSecretWorld(t, secret("mesh", map[string]string{"password": "m1"}), secret("bgp", map[string]string{"tor": "t1"}),
			secret("mesh2", map[string]string{"password": "m2"}), secret("bgp2", map[string]string{"tor": "t2"}))
		w.syncUntil("start", goodPeers, only("", "peer:tor=t1", "mesh:node2=m1", goodPeers))
		w.api.setFail("mesh2", true)
		w.api.setFail("bgp2", true)
		cfg, _ := w.c.listers.configs.Get("default")
		cfg = cfg.DeepCopy()
		cfg.Spec.NodeMeshPassword = password("mesh2", "password")
		tor, _ := w.c.listers.peers.Get("tor")
		tor = tor.DeepCopy()
		tor.Spec.Password = password("bgp2", "tor")
		if err := w.configs.Update(cfg); err != nil {
			t.Fatal(err)
		}
		if err := w.peers.Update(tor); err != nil {
			t.Fatal(err)
		}
		w.syncHolds("new Secrets not readable yet", goodPeers, 2)
		w.api.setFail("mesh2", false)
		w.api.setFail("bgp2", false)
		w.syncUntil("new Secrets readable", "peer:tor=t2,mesh:node2=m2",
			only(goodPeers, "peer:tor=t2,mesh:node2=m1", "peer:tor=t1,mesh:node2=m2", "peer:tor=t2,mesh:node2=m2"))
	})
	t.Run("Secret deleted or key removed", func(t *testing.T) {
		w := newSecretWorld(t, secret("mesh", map[string]string{"password": "m1"}), secret("bgp", map[string]string{"tor": "t1"}))
		w.syncUntil("start", goodPeers, only("", "peer:tor=t1", "mesh:node2=m1", goodPeers))
		secrets := w.api.kube.CoreV1().Secrets("cairn-system")
		if err := secrets.Delete(w.ctx, "bgp", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The ToR session goes: its password is really gone.
		w.syncUntil("ToR Secret deleted", "mesh:node2=m1", only(goodPeers, "mesh:node2=m1"))
		if err := w.c.sync(w.ctx); err == nil || !strings.Contains(err.Error(), "cairn-system/bgp not found") {
			t.Errorf("sync error %v, want the deleted Secret named", err)
		}
		if _, err := secrets.Update(w.ctx, secret("mesh", map[string]string{"other": "x"}), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The mesh password's key is gone: the mesh runs without one.
		w.syncUntil("mesh key removed", "mesh:node2=", only("mesh:node2=m1", "mesh:node2="))
	})
}
