package gc

import (
	"context"
	"fmt"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/ipam"
)

// affinities releases the claims of deleted nodes and settles claims
// left pending (or pendingDeletion) for longer than the grace period.
func (p *pass) affinities(ctx context.Context) {
	blocks := map[netip.Prefix]*v1.IPAMBlock{}
	for _, b := range p.snap.Blocks {
		if pr, err := ipam.BlockPrefix(b); err == nil {
			blocks[pr] = b
		}
	}
	for _, a := range p.snap.Affinities {
		pr, err := netip.ParsePrefix(a.Spec.CIDR)
		if err != nil {
			continue
		}
		b := blocks[pr.Masked()]
		ours := b != nil && ipam.AffinityNode(b.Spec.Affinity) == a.Spec.Node
		exists, err := p.nodeExists(ctx, a.Spec.Node, false)
		if err != nil {
			p.errs = append(p.errs, err)
			continue
		}
		switch {
		case !ours:
			// A void claim: the block is gone or another node's.
			if p.due("voidaff/" + a.Name + "/" + a.ResourceVersion) {
				p.deleteAffinity(ctx, a, "claim on a block the node does not own")
			}
		case !exists:
			if !p.due("deadnode/" + a.Name + "/" + b.ResourceVersion) {
				continue
			}
			if ok, err := p.nodeExists(ctx, a.Spec.Node, true); err != nil || ok {
				continue
			}
			p.releaseDeadNodeBlock(ctx, a, b)
		case a.Spec.State == v1.AffinityPending:
			if p.due("pending/" + a.Name + "/" + a.ResourceVersion) {
				p.setState(ctx, a, v1.AffinityConfirmed, "confirmed claim left pending")
			}
		case a.Spec.State == v1.AffinityPendingDeletion:
			if !p.due("pendingdel/" + a.Name + "/" + a.ResourceVersion + "/" + b.ResourceVersion) {
				continue
			}
			if len(b.Spec.Allocations) == 0 {
				p.deleteBlockAndClaim(ctx, a, b, "finished release left halfway")
			} else {
				p.setState(ctx, a, v1.AffinityConfirmed, "restored claim on a block in use")
			}
		}
	}
}

// releaseDeadNodeBlock releases a deleted node's block once its
// allocations are gone (its pods' addresses are released as their pods
// go; other nodes' borrowed addresses keep the block until released).
func (p *pass) releaseDeadNodeBlock(ctx context.Context, a *v1.BlockAffinity, b *v1.IPAMBlock) {
	if len(b.Spec.Allocations) > 0 {
		p.res.Waiting++
		return
	}
	p.deleteBlockAndClaim(ctx, a, b, "released block of deleted node")
}

func (p *pass) deleteBlockAndClaim(ctx context.Context, a *v1.BlockAffinity, b *v1.IPAMBlock, why string) {
	if err := p.c.opts.Store.Blocks().Delete(ctx, b.Name, b.ResourceVersion); err != nil && !ipam.IsNotFound(err) {
		p.errs = append(p.errs, fmt.Errorf("%s: delete block %s: %w", why, b.Spec.CIDR, err))
		return
	}
	p.c.log.Info(why, "block", b.Spec.CIDR, "node", a.Spec.Node)
	p.res.DeletedBlocks = append(p.res.DeletedBlocks, b.Spec.CIDR)
	p.deleteAffinity(ctx, a, why)
}

func (p *pass) deleteAffinity(ctx context.Context, a *v1.BlockAffinity, why string) {
	if err := p.c.opts.Store.Affinities().Delete(ctx, a.Name, a.ResourceVersion); err != nil && !ipam.IsNotFound(err) {
		p.errs = append(p.errs, fmt.Errorf("%s: delete affinity %s: %w", why, a.Name, err))
		return
	}
	p.c.log.Info("deleted affinity", "affinity", a.Name, "node", a.Spec.Node, "block", a.Spec.CIDR, "why", why)
	p.res.DeletedAffinities = append(p.res.DeletedAffinities, a.Name)
}

func (p *pass) setState(ctx context.Context, a *v1.BlockAffinity, state, why string) {
	next := a.DeepCopy()
	next.Spec.State = state
	if _, err := p.c.opts.Store.Affinities().Update(ctx, next); err != nil {
		if !ipam.IsConflict(err) && !ipam.IsNotFound(err) {
			p.errs = append(p.errs, fmt.Errorf("%s: update affinity %s: %w", why, a.Name, err))
		}
		return
	}
	p.c.log.Info(why, "affinity", a.Name, "node", a.Spec.Node, "block", a.Spec.CIDR)
	p.res.Repaired = append(p.res.Repaired, why+": "+a.Name)
}

// blocks deals with blocks no claim backs: an empty one is deleted; a
// non-empty one whose named node exists gets its claim back, so the node
// announces it again.
func (p *pass) blocks(ctx context.Context) {
	claimed := map[string]bool{}
	for _, a := range p.snap.Affinities {
		if pr, err := netip.ParsePrefix(a.Spec.CIDR); err == nil {
			claimed[a.Spec.Node+"|"+pr.Masked().String()] = true
		}
	}
	for _, b := range p.snap.Blocks {
		pr, err := ipam.BlockPrefix(b)
		node := ipam.AffinityNode(b.Spec.Affinity)
		if err != nil || (node != "" && claimed[node+"|"+pr.String()]) {
			continue
		}
		if !p.due("unclaimed/" + b.Name + "/" + b.ResourceVersion) {
			continue
		}
		if len(b.Spec.Allocations) == 0 {
			if err := p.c.opts.Store.Blocks().Delete(ctx, b.Name, b.ResourceVersion); err != nil && !ipam.IsNotFound(err) {
				if !ipam.IsConflict(err) {
					p.errs = append(p.errs, fmt.Errorf("delete unclaimed block %s: %w", pr, err))
				}
				continue
			}
			p.c.log.Info("deleted empty unclaimed block", "block", pr.String())
			p.res.DeletedBlocks = append(p.res.DeletedBlocks, pr.String())
			continue
		}
		if node == "" {
			continue // in use, owned by nobody: waits for its addresses to go
		}
		if ok, err := p.nodeExists(ctx, node, true); err != nil || !ok {
			continue
		}
		aff := &v1.BlockAffinity{
			ObjectMeta: metav1.ObjectMeta{Name: ipam.AffinityName(node, pr)},
			Spec:       v1.BlockAffinitySpec{Node: node, CIDR: pr.String(), State: v1.AffinityConfirmed},
		}
		if _, err := p.c.opts.Store.Affinities().Create(ctx, aff); err != nil && !ipam.IsAlreadyExists(err) {
			p.errs = append(p.errs, fmt.Errorf("restore claim of %s on %s: %w", node, pr, err))
			continue
		}
		p.res.Repaired = append(p.res.Repaired, fmt.Sprintf("restored claim of %s on %s", node, pr))
	}
}
