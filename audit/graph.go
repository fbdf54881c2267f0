package audit

import "slices"

// adjacency returns the data edges of g as index lists.
func adjacency(g *Graph) (idx map[string]int, adj [][]int) {
	idx = make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		idx[n.ID] = i
	}
	adj = make([][]int, len(g.Nodes))
	for _, e := range g.Edges {
		if e.Kind != EdgeData {
			continue
		}
		a, ok1 := idx[e.From]
		b, ok2 := idx[e.To]
		if !ok1 || !ok2 {
			continue
		}
		adj[a] = append(adj[a], b)
		adj[b] = append(adj[b], a)
	}
	return idx, adj
}

// ArticulationPoints returns the nodes of g's data graph whose removal
// disconnects s from t (Tarjan's articulation points, kept when they lie
// between s and t).
func ArticulationPoints(g *Graph, s, t string) []string {
	idx, adj := adjacency(g)
	si, ok1 := idx[s]
	ti, ok2 := idx[t]
	if !ok1 || !ok2 {
		return nil
	}
	n := len(g.Nodes)
	disc, low := make([]int, n), make([]int, n)
	ap := make([]bool, n)
	timer := 0
	var dfs func(u, parent int)
	dfs = func(u, parent int) {
		timer++
		disc[u], low[u] = timer, timer
		children := 0
		for _, v := range adj[u] {
			if disc[v] == 0 {
				children++
				dfs(v, u)
				low[u] = min(low[u], low[v])
				if parent >= 0 && low[v] >= disc[u] {
					ap[u] = true
				}
			} else if v != parent {
				low[u] = min(low[u], disc[v])
			}
		}
		if parent < 0 && children > 1 {
			ap[u] = true
		}
	}
	dfs(si, -1)
	var out []string
	for i, isAP := range ap {
		if !isAP || i == si || i == ti {
			continue
		}
		if !connected(adj, si, ti, i) {
			out = append(out, g.Nodes[i].ID)
		}
	}
	slices.Sort(out)
	return out
}

// connected reports whether s reaches t without crossing node skip.
func connected(adj [][]int, s, t, skip int) bool {
	seen := make([]bool, len(adj))
	seen[s] = true
	queue := []int{s}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		if u == t {
			return true
		}
		for _, v := range adj[u] {
			if !seen[v] && v != skip {
				seen[v] = true
				queue = append(queue, v)
			}
		}
	}
	return false
}

// MinCut returns a smallest set of nodes of g's data graph (s and t
// excluded) whose removal disconnects s from t: max-flow over the graph
// with every node split in two joined by a unit capacity. It returns nil
// when s and t are not connected, or only directly.
func MinCut(g *Graph, s, t string) []string {
	idx, adj := adjacency(g)
	si, ok1 := idx[s]
	ti, ok2 := idx[t]
	if !ok1 || !ok2 {
		return nil
	}
	n := len(g.Nodes)
	capm := splitCapacities(adj, si, ti)
	src, dst := 2*si+1, 2*ti
	flow := 0
	for flow < n && augment(capm, src, dst) {
		flow++
	}
	if flow >= n {
		return nil // s and t adjacent: no node cut
	}
	// The cut: nodes whose "in" half the residual graph reaches from the
	// source, and whose "out" half it does not.
	seen := residualReach(capm, src)
	var out []string
	for i := range n {
		if seen[2*i] && !seen[2*i+1] {
			out = append(out, g.Nodes[i].ID)
		}
	}
	slices.Sort(out)
	return out
}

// splitCapacities returns the capacities of the graph whose node i is
// split into in(i)=2i and out(i)=2i+1, joined by a unit capacity (s and t:
// unbounded), each edge unbounded from out to in.
func splitCapacities(adj [][]int, si, ti int) []map[int]int {
	n := len(adj)
	const inf = 1 << 30
	capm := make([]map[int]int, 2*n)
	for i := range capm {
		capm[i] = map[int]int{}
	}
	for i := range n {
		c := 1
		if i == si || i == ti {
			c = inf
		}
		capm[2*i][2*i+1] += c
		capm[2*i+1][2*i] += 0
		for _, j := range adj[i] {
			capm[2*i+1][2*j] = inf
			if _, ok := capm[2*j][2*i+1]; !ok {
				capm[2*j][2*i+1] = 0
			}
		}
	}
	return capm
}

// augment finds a path of spare capacity from src to dst, breadth first,
// and pushes one unit of flow along it; false when there is none.
func augment(capm []map[int]int, src, dst int) bool {
	prev := make([]int, len(capm))
	for i := range prev {
		prev[i] = -1
	}
	prev[src] = src
	queue := []int{src}
	for len(queue) > 0 && prev[dst] < 0 {
		u := queue[0]
		queue = queue[1:]
		for v, c := range capm[u] {
			if c > 0 && prev[v] < 0 {
				prev[v] = u
				queue = append(queue, v)
			}
		}
	}
	if prev[dst] < 0 {
		return false
	}
	for v := dst; v != src; v = prev[v] {
		u := prev[v]
		capm[u][v]--
		capm[v][u]++
	}
	return true
}

// residualReach marks the split nodes the residual graph reaches from src.
func residualReach(capm []map[int]int, src int) []bool {
	seen := make([]bool, len(capm))
	seen[src] = true
	queue := []int{src}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for v, c := range capm[u] {
			if c > 0 && !seen[v] {
				seen[v] = true
				queue = append(queue, v)
			}
		}
	}
	return seen
}
