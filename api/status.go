package api

import (
	"bytes"
	"net/http"

	"github.com/multihome/multihome/audit"
	"github.com/multihome/multihome/bgp"
)

// BGPReporter is what a Backend may also implement to serve
// GET /api/v1/bgp: the speaker's neighbours, and whether BGP is
// configured at all.
type BGPReporter interface {
	BGPStatus() ([]bgp.NeighborStatus, bool)
}

// Auditor is what a Backend may also implement to serve GET /api/v1/audit
// and /api/v1/audit.svg: the static audit of the config in force.
type Auditor interface {
	Audit() *audit.Report
}

// BGPList is the answer of GET /api/v1/bgp.
type BGPList struct {
	Neighbors []bgp.NeighborStatus `json:"neighbors"`
}

func (s *Server) getBGP(w http.ResponseWriter, r *http.Request) {
	br, ok := s.b.(BGPReporter)
	if !ok {
		writeError(w, http.StatusNotFound, "bgp is not configured: this daemon has no BGP speaker")
		return
	}
	ns, configured := br.BGPStatus()
	if !configured {
		writeError(w, http.StatusNotFound, "bgp is not configured: the config has no bgp section")
		return
	}
	if ns == nil {
		ns = []bgp.NeighborStatus{}
	}
	writeJSON(w, http.StatusOK, BGPList{Neighbors: ns})
}

// report returns the backend's audit, or answers 404/500 and nil.
func (s *Server) report(w http.ResponseWriter) *audit.Report {
	a, ok := s.b.(Auditor)
	if !ok {
		writeError(w, http.StatusNotFound, "audit is not available from this daemon")
		return nil
	}
	rep := a.Audit()
	if rep == nil {
		writeError(w, http.StatusInternalServerError, "audit: no report")
		return nil
	}
	return rep
}

func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) {
	rep := s.report(w)
	if rep == nil {
		return
	}
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		writeError(w, http.StatusInternalServerError, "render audit: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

func (s *Server) getAuditSVG(w http.ResponseWriter, r *http.Request) {
	rep := s.report(w)
	if rep == nil {
		return
	}
	var b bytes.Buffer
	if err := rep.WriteSVG(&b); err != nil {
		writeError(w, http.StatusInternalServerError, "render audit: %v", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml")
	h.Set("Cache-Control", "no-store")
	// An SVG opened on its own is a document: no script may run in it.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(b.Bytes())
}
