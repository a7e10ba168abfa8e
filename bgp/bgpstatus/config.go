package bgpstatus

import (
	"fmt"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
)

// DefaultConfig is the only BGPConfiguration the agents read.
const DefaultConfig = "default"

// Config is the status of a BGPConfiguration: Accepted (can the agents
// apply it as it is) and, on the default one, Ready and the node mesh's
// sessions from reports. Conditions keep their transition times from the
// current status.
func Config(cfg *v1.BGPConfiguration, reports []Report) v1.BGPConfigurationStatus {
	var st v1.BGPConfigurationStatus
	st.ObservedGeneration = cfg.Generation
	st.Conditions = copyConditions(cfg.Status.Conditions)
	gen := cfg.Generation
	if cfg.Name != DefaultConfig {
		setCondition(&st.Conditions, gen, v1.ConditionAccepted, false, "NotRead",
			"the agents read only the BGPConfiguration named "+DefaultConfig+"; this one changes nothing")
		return st
	}
	problems := configProblems(cfg)
	setCondition(&st.Conditions, gen, v1.ConditionAccepted, problems == "", pick(problems == "", "Valid", "BadCommunity"), problems)
	if cfg.Spec.NodeToNodeMeshEnabled != nil && !*cfg.Spec.NodeToNodeMeshEnabled {
		setCondition(&st.Conditions, gen, v1.ConditionReady, true, "MeshDisabled", "the node mesh is off")
		return st
	}
	t := count(reports, func(s v1.BGPSessionStatus) bool { return s.Type == "NodeMesh" || peering.IsMesh(s.Name) })
	st.MeshSessions, st.MeshEstablished, st.SessionsDown = t.sessions, t.established, listed(t.down)
	if len(t.down) > 0 {
		st.LastError = commonestReason(t.down)
		setCondition(&st.Conditions, gen, v1.ConditionReady, false, "MeshSessionsDown",
			fmt.Sprintf("%d of %d mesh sessions not Established: %s", t.sessions-t.established, t.sessions, st.LastError))
	} else {
		setCondition(&st.Conditions, gen, v1.ConditionReady, true, "MeshEstablished", fmt.Sprintf("all %d mesh sessions Established", t.sessions))
	}
	return st
}

// configProblems says what the agents cannot use as written; empty when
// they can use all of it.
func configProblems(cfg *v1.BGPConfiguration) string {
	if err := peering.CheckConfig(cfg); err != nil {
		return err.Error()
	}
	return ""
}
