package api

import (
	"net/http"

	"github.com/multihome/multihome/mptcp"
)

// MPTCPReporter is what a Backend may also implement to serve GET
// /api/v1/mptcp: the MPTCP endpoints multihome keeps in the kernel by
// link health (and the operator's beside them), with their flags and
// link, as the path manager's last apply left them; false when the config
// has no mptcp section.
type MPTCPReporter interface {
	MPTCPStatus() (mptcp.Status, bool)
}

func (s *Server) getMPTCP(w http.ResponseWriter, r *http.Request) {
	mr, ok := s.b.(MPTCPReporter)
	if !ok {
		writeError(w, http.StatusNotFound, "mptcp is not configured: this daemon has no MPTCP subsystem")
		return
	}
	st, configured := mr.MPTCPStatus()
	if !configured {
		writeError(w, http.StatusNotFound, "mptcp is not configured: the config has no mptcp section")
		return
	}
	if st.Endpoints == nil {
		st.Endpoints = []mptcp.EndpointStatus{}
	}
	if st.Links == nil {
		st.Links = []mptcp.LinkStatus{}
	}
	writeJSON(w, http.StatusOK, st)
}
