package bgpstatus

import (
	"fmt"
	"strings"

	v1 "github.com/cairn-net/cairn/apis/cairn/v1alpha1"
	"github.com/cairn-net/cairn/bgp/peering"
)

// Config is the status of a BGPConfiguration: Accepted (can the agents
// apply it as it is) and, on the default one, Ready and the node mesh's
// sessions from reports. nodeExists says whether a node of that name
// exists, for node.<name> objects. Conditions keep their transition times
// from the current status.
func Config(cfg *v1.BGPConfiguration, reports []Report, nodeExists func(string) bool) v1.BGPConfigurationStatus {
	var st v1.BGPConfigurationStatus
	st.ObservedGeneration = cfg.Generation
	st.Conditions = copyConditions(cfg.Status.Conditions)
	gen := cfg.Generation
	if node, ok := strings.CutPrefix(cfg.Name, peering.NodeConfigName("")); ok {
		exists := nodeExists(node)
		setCondition(&st.Conditions, gen, v1.ConditionAccepted, exists, pick(exists, "Valid", "NodeNotFound"),
			pick(exists, "node "+node+" runs with the default and this object's listenPort, logSeverityScreen and service ranges",
				"no node is named "+node+": this object changes nothing until one is"))
		return st
	}
	if cfg.Name != peering.DefaultConfigName {
		setCondition(&st.Conditions, gen, v1.ConditionAccepted, false, "NotRead",
			"the agents read only the BGPConfiguration named "+peering.DefaultConfigName+" and those named node.<node name>; this one changes nothing")
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
