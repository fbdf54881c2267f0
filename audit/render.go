package audit

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"slices"
	"strings"
)

// WriteText writes the report for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	counts := map[Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	fmt.Fprintf(&b, "multihome audit: %d findings (high %d, medium %d, low %d, info %d)\n",
		len(r.Findings), counts[High], counts[Medium], counts[Low], counts[Info])
	if len(r.SPOFs) > 0 {
		fmt.Fprintf(&b, "single points of failure: %s\n", strings.Join(labels(r.SPOFs), ", "))
	} else {
		b.WriteString("single points of failure: none found\n")
	}
	if len(r.MinCut) > 0 {
		fmt.Fprintf(&b, "minimum cut LAN-Internet: %d (%s)\n", len(r.MinCut), strings.Join(labels(r.MinCut), ", "))
	}
	if len(r.ServiceCuts) > 0 {
		b.WriteString("smallest failure sets (of at most 2):\n")
		for _, svc := range sortedKeys(r.ServiceCuts) {
			fmt.Fprintf(&b, "  %s: %s\n", svc, strings.Join(labels(r.ServiceCuts[svc]), " + "))
		}
	}
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "\n[%s] %s: %s\n    fix: %s\n", strings.ToUpper(f.Severity.String()), f.Check, f.Summary, f.Recommendation)
	}
	if d := r.Discovery; d != nil {
		b.WriteString("\npaths discovered:\n")
		for _, p := range d.Paths {
			if p.Source.IsValid() {
				fmt.Fprintf(&b, "  %s (%s from %s) to %s:", p.Link, p.Interface, p.Source, p.Target)
			} else {
				fmt.Fprintf(&b, "  %s (%s) to %s:", p.Link, p.Interface, p.Target)
			}
			if p.Error != "" {
				fmt.Fprintf(&b, " error: %s\n", p.Error)
				continue
			}
			for _, h := range p.Hops {
				switch {
				case !h.Addr.IsValid():
					b.WriteString(" *")
				case h.Forward.IsValid():
					fmt.Fprintf(&b, " %s(%s)", h.Addr, h.Forward)
				default:
					fmt.Fprintf(&b, " %s", h.Addr)
				}
			}
			if !p.Reached {
				b.WriteString(" (not reached)")
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func labels(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = label(id)
	}
	return out
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// dotShape is a node's Graphviz shape.
func dotShape(n Node) string {
	switch n.Kind {
	case KindLAN, KindInternet:
		return "doubleoctagon"
	case KindConduit:
		return "cds"
	case KindPower:
		return "invtriangle"
	case KindLink:
		return "ellipse"
	case KindRouter:
		return "hexagon"
	case KindProvider, KindCarrier:
		return "oval"
	case KindDNS:
		return "note"
	}
	return "box"
}

// WriteDOT writes the site graph in Graphviz DOT, single points of failure
// filled red.
func (r *Report) WriteDOT(w io.Writer) error {
	var b strings.Builder
	b.WriteString("graph multihome {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n")
	for _, n := range r.Graph.Nodes {
		attrs := fmt.Sprintf("label=%q, shape=%s", nodeLabel(n), dotShape(n))
		if n.SPOF {
			attrs += `, style=filled, fillcolor="#f4a6a6", color="#c00000", penwidth=2`
		}
		fmt.Fprintf(&b, "  %q [%s];\n", n.ID, attrs)
	}
	for _, e := range r.Graph.Edges {
		style := ""
		switch e.Kind {
		case EdgePower:
			style = ` [style=dashed, color="#b8860b"]`
		case EdgeService:
			style = ` [style=dotted]`
		case EdgeDiscovered:
			style = ` [color="#c00000", penwidth=2]`
		}
		fmt.Fprintf(&b, "  %q -- %q%s;\n", e.From, e.To, style)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func nodeLabel(n Node) string {
	if n.Detail != "" {
		return n.Label + "\n" + n.Detail
	}
	return n.Label
}

// cell is a node's place in the drawing.
type cell struct{ col, row int }

// layout places the nodes in a grid: the data path in columns by distance
// from the LAN (the Internet last), ordered in each column by the mean row
// of their neighbours in the column before (one barycentre sweep), and
// the nodes off the data path (DNS servers, their servers, power feeds) in
// rows below, under the mean column of what they attach to (DNS servers
// hosted elsewhere under the Internet).
func layout(g *Graph) (map[string]cell, int, int) {
	idx, adj := adjacency(g)
	dist := lanDistances(g, idx, adj)
	ncols := 0
	for _, d := range dist {
		ncols = max(ncols, d+1)
	}
	gap := -1 // a column for discovered routers, between the links and the Internet
	if slices.ContainsFunc(g.Nodes, func(n Node) bool { return n.Kind == KindRouter }) {
		gap = ncols
		ncols++
	}
	if i, ok := idx[idInternet]; ok {
		dist[i] = ncols
		ncols++
	}
	pos, rows := placeDataPath(g, adj, dist, ncols)
	rows = placeOffPath(g, pos, ncols, gap, rows)
	return pos, ncols, rows
}

// lanDistances returns each node's hop count from the LAN (breadth
// first, not through the Internet), -1 where it is not reached.
func lanDistances(g *Graph, idx map[string]int, adj [][]int) []int {
	dist := make([]int, len(g.Nodes))
	for i := range dist {
		dist[i] = -1
	}
	if s, ok := idx[idLAN]; ok {
		dist[s] = 0
		queue := []int{s}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			for _, v := range adj[u] {
				if dist[v] < 0 && g.Nodes[v].Kind != KindInternet {
					dist[v] = dist[u] + 1
					queue = append(queue, v)
				}
			}
		}
	}
	return dist
}

// placeDataPath puts the nodes with a distance in its column, ordered by
// the mean row of their neighbours in the column before, and returns the
// cells and the number of rows used.
func placeDataPath(g *Graph, adj [][]int, dist []int, ncols int) (map[string]cell, int) {
	cols := make([][]int, ncols)
	for i, d := range dist {
		if d >= 0 {
			cols[d] = append(cols[d], i)
		}
	}
	pos := map[string]cell{}
	row := map[int]float64{}
	rows := 0
	for c, nodes := range cols {
		if c > 0 {
			bary := func(i int) float64 {
				sum, n := 0.0, 0
				for _, v := range adj[i] {
					if dist[v] == c-1 {
						sum += row[v]
						n++
					}
				}
				if n == 0 {
					return 1e9
				}
				return sum / float64(n)
			}
			slices.SortStableFunc(nodes, func(a, b int) int {
				ba, bb := bary(a), bary(b)
				switch {
				case ba < bb:
					return -1
				case ba > bb:
					return 1
				}
				return 0
			})
		}
		for r, i := range nodes {
			row[i] = float64(r)
			pos[g.Nodes[i].ID] = cell{c, r}
		}
		rows = max(rows, len(nodes))
	}
	return pos, rows
}

// placeOffPath adds to pos the nodes off the data path, below its rows,
// in three passes so that each can attach to the previous: DNS servers
// (and discovered routers, in column gap), then devices (servers), then
// power feeds. It returns the number of rows used.
func placeOffPath(g *Graph, pos map[string]cell, ncols, gap, rows int) int {
	used := map[cell]bool{}
	for _, p := range pos {
		used[p] = true
	}
	base := rows
	for _, kinds := range [][]string{{KindDNS, KindRouter}, {KindDevice, KindConduit, KindLink, KindProvider, KindCarrier}, {KindPower}} {
		for _, n := range g.Nodes {
			if _, ok := pos[n.ID]; ok || !slices.Contains(kinds, n.Kind) {
				continue
			}
			sum, k := 0, 0
			for _, e := range g.Edges {
				other := e.To
				if e.To == n.ID {
					other = e.From
				} else if e.From != n.ID {
					continue
				}
				if p, ok := pos[other]; ok {
					sum += p.col
					k++
				}
			}
			c := 0
			switch {
			case k > 0:
				c = (sum + k/2) / k
			case n.Kind == KindDNS:
				c = ncols - 1 // hosted elsewhere: out on the Internet
			}
			r := base
			if n.Kind == KindRouter {
				c, r = gap, 0
			}
			for used[cell{c, r}] {
				r++
			}
			used[cell{c, r}] = true
			pos[n.ID] = cell{c, r}
			rows = max(rows, r+1)
		}
		base = rows
	}
	return rows
}

// WriteSVG draws the site graph with a simple layered layout (no Graphviz
// needed): columns from the LAN to the Internet, single points of failure
// in red.
func (r *Report) WriteSVG(w io.Writer) error {
	const (
		colW, rowH = 170, 62
		boxW, boxH = 140, 40
		margin     = 20
	)
	cells, ncols, rows := layout(r.Graph)
	width := margin*2 + max(ncols, 1)*colW
	height := margin*2 + max(rows, 1)*rowH + 30
	pos := map[string][2]int{}
	for id, c := range cells {
		pos[id] = [2]int{margin + c.col*colW + boxW/2, margin + 30 + c.row*rowH + boxH/2}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("multihome audit: %d findings, single points of failure: %s", len(r.Findings), strings.Join(labels(r.SPOFs), ", "))
	if len(r.SPOFs) == 0 {
		title = fmt.Sprintf("multihome audit: %d findings, no single point of failure", len(r.Findings))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", margin, margin+4, html.EscapeString(title))
	for _, e := range r.Graph.Edges {
		a, ok1 := pos[e.From]
		c, ok2 := pos[e.To]
		if !ok1 || !ok2 {
			continue
		}
		style := `stroke="#555" stroke-width="1.5"`
		switch e.Kind {
		case EdgePower:
			style = `stroke="#b8860b" stroke-dasharray="6,4"`
		case EdgeService:
			style = `stroke="#888" stroke-dasharray="2,3"`
		case EdgeDiscovered:
			style = `stroke="#c00000" stroke-width="2"`
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" %s/>`+"\n", a[0], a[1], c[0], c[1], style)
	}
	for _, n := range r.Graph.Nodes {
		{
			p, ok := pos[n.ID]
			if !ok {
				continue
			}
			fill, stroke, sw := "#eef3fb", "#4a6fa5", 1
			switch n.Kind {
			case KindPower:
				fill, stroke = "#fff6d6", "#b8860b"
			case KindDNS:
				fill, stroke = "#eef8ee", "#3c8d3c"
			case KindLAN, KindInternet:
				fill, stroke = "#f0f0f0", "#333"
			}
			if n.SPOF {
				fill, stroke, sw = "#f8c4c4", "#c00000", 3
			}
			fmt.Fprintf(&b, `<g><title>%s</title><rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="%s" stroke-width="%d"/>`,
				html.EscapeString(n.ID), p[0]-boxW/2, p[1]-boxH/2, boxW, boxH, fill, stroke, sw)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-weight="bold">%s</text>`, p[0], p[1]-2, html.EscapeString(clip(n.Label)))
			sub := n.Kind
			if n.Detail != "" {
				sub = n.Detail
			}
			if n.SPOF {
				sub = "SPOF · " + sub
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="9" fill="#444">%s</text></g>`+"\n", p[0], p[1]+12, html.EscapeString(clip(sub)))
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func clip(s string) string {
	if r := []rune(s); len(r) > 24 {
		return string(r[:23]) + "…"
	}
	return s
}
