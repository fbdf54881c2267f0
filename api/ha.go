package api

import (
	"net/http"

	"github.com/multihome/multihome/ha"
)

// HAReporter is what a Backend may also implement to serve GET
// /api/v1/ha: this node's role in the pair, the partner, the sync state
// and the last takeover, and whether the config has an ha section.
type HAReporter interface {
	HAStatus() (ha.Status, bool)
}

func (s *Server) getHA(w http.ResponseWriter, r *http.Request) {
	hr, ok := s.b.(HAReporter)
	if !ok {
		writeError(w, http.StatusNotFound, "ha is not configured: this daemon has no HA subsystem")
		return
	}
	st, configured := hr.HAStatus()
	if !configured {
		writeError(w, http.StatusNotFound, "ha is not configured: the config has no ha section")
		return
	}
	writeJSON(w, http.StatusOK, st)
}
