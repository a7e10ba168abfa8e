// Package deploy tests deploy/ as `kubectl apply -k` renders it (the
// kustomize library kubectl embeds): the base, the lab overlay and the
// examples. It checks what the DaemonSet may do and mount, its probes,
// tolerations, resources and update strategy, and that what it installs
// matches the repository: the conflist in the ConfigMap is
// deploy/node/10-cairn.conflist, its socket is the agent's, the paths are
// those of the cairn image (internal/images), the lab overlay's objects are
// the lab's. With the pinned control plane, it also applies all three with
// the pinned kubectl to a real API server.
package deploy
