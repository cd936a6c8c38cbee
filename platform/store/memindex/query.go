package memindex

import (
	"encoding/json"
	"math/bits"
	"slices"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

// Query returns the documents matching q.Filter that who may view, ordered
// by q.OrderBy then id, and paged by q.First and q.Last (1-based,
// inclusive). Count is the number of matches before paging. Documents
// without an ACL are visible to administrators only. A query the index
// cannot evaluate (see Check) is ErrInvalid.
func (ix *Index) Query(q cimi.Query, who cimi.Identity) (store.Page, error) {
	if err := Check(q); err != nil {
		return store.Page{}, err
	}
	paths := pathsOf(q)

	ix.mu.RLock()
	if !ix.dirty {
		if cols, ok := ix.columns(paths); ok {
			defer ix.mu.RUnlock()
			return ix.run(q, &who, cols), nil
		}
	}
	ix.mu.RUnlock()

	// Writes since the last query, or attributes never queried: prepare
	// under the write lock and answer there, so nothing moves in between.
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.settle()
	cols, ok := ix.columns(paths)
	if !ok {
		keep := make(map[string]bool, len(paths))
		for key := range paths {
			keep[key] = true
		}
		for key, path := range paths {
			if cols[key] == nil {
				cols[key] = ix.addColumn(key, path, keep)
			}
		}
	}
	return ix.run(q, &who, cols), nil
}

// pathsOf lists the attribute paths q reads, keyed by an unambiguous
// encoding of the path.
func pathsOf(q cimi.Query) map[string][]string {
	paths := make(map[string][]string)
	add := func(a cimi.Attribute) { paths[pathKey(a.Path)] = a.Path }
	var walk func(e cimi.Expr)
	walk = func(e cimi.Expr) {
		switch x := e.(type) {
		case *cimi.Logical:
			for _, t := range x.Terms {
				walk(t)
			}
		case *cimi.Comparison:
			add(x.Attr)
		}
	}
	if q.Filter != nil {
		walk(q.Filter)
	}
	for _, o := range q.OrderBy {
		add(o.Attr)
	}
	return paths
}

func pathKey(path []string) string {
	b, _ := json.Marshal(path)
	return string(b)
}

// columns finds the column of every path; ok is false if one is missing.
func (ix *Index) columns(paths map[string][]string) (map[string]*column, bool) {
	cols := make(map[string]*column, len(paths))
	ok := true
	for key := range paths {
		if c := ix.column(key); c != nil {
			cols[key] = c
		} else {
			ok = false
		}
	}
	return cols, ok
}

// pred reports whether the document in a slot matches a filter.
type pred func(slot int) bool

// compile turns a filter into a predicate over the columns.
func compile(e cimi.Expr, cols map[string]*column) pred {
	switch x := e.(type) {
	case *cimi.Logical:
		terms := make([]pred, len(x.Terms))
		for i, t := range x.Terms {
			terms[i] = compile(t, cols)
		}
		if x.Op == cimi.And {
			return func(s int) bool {
				for _, t := range terms {
					if !t(s) {
						return false
					}
				}
				return true
			}
		}
		return func(s int) bool {
			for _, t := range terms {
				if t(s) {
					return true
				}
			}
			return false
		}
	case *cimi.Comparison:
		cells := cols[pathKey(x.Attr.Path)].cells
		op, lit := x.Op, x.Value
		if lit.Kind == cimi.String {
			// The most common comparison, made cheap: interned equal
			// strings compare by pointer.
			return func(s int) bool {
				c := &cells[s]
				if c.kind == rankString {
					return holds(op, compareStrings(c.s, lit.Str))
				}
				return cellMatch(c, op, &lit)
			}
		}
		return func(s int) bool { return cellMatch(&cells[s], op, &lit) }
	}
	return func(int) bool { return true }
}

func compareStrings(a, b string) int {
	if a == b {
		return 0
	}
	if a < b {
		return -1
	}
	return 1
}

// run answers q under a lock already held, with the columns of its paths.
func (ix *Index) run(q cimi.Query, who *cimi.Identity, cols map[string]*column) store.Page {
	admin := who.IsAdmin()
	match := func(int) bool { return true }
	if q.Filter != nil {
		match = compile(q.Filter, cols)
	}
	from, to := max(q.First, 1), max(q.Last, 0)
	if len(q.OrderBy) == 0 {
		return ix.scan(match, who, admin, from, to)
	}

	var hits []int32
	for s := range ix.guards {
		if visible(&ix.guards[s], who, admin) && match(s) {
			hits = append(hits, int32(s))
		}
	}
	page := store.Page{Count: len(hits)}
	if from > len(hits) || (to > 0 && to < from) {
		return page
	}
	srt := &sorter{rank: ix.rank}
	for _, o := range q.OrderBy {
		srt.keys = append(srt.keys, cols[pathKey(o.Attr.Path)].cells)
		srt.desc = append(srt.desc, o.Desc)
	}
	if to > 0 && to < len(hits)/4 {
		hits = srt.top(hits, to)
	} else {
		slices.SortFunc(hits, srt.compare)
	}
	to = min(to, len(hits))
	if to == 0 {
		to = len(hits)
	}
	page.Docs = make([]store.Document, 0, to-from+1)
	for _, s := range hits[from-1 : to] {
		page.Docs = append(page.Docs, ix.entries[s].document())
	}
	return page
}

// scan answers a query in id order without sorting: it marks the rank of
// every hit in a bitmap while walking the slots, then reads the page off
// the bitmap in rank order.
func (ix *Index) scan(match pred, who *cimi.Identity, admin bool, from, to int) store.Page {
	var page store.Page
	marks := make([]uint64, (len(ix.sorted)+63)/64)
	for s := range ix.guards {
		if visible(&ix.guards[s], who, admin) && match(s) {
			r := ix.rank[s]
			marks[r>>6] |= 1 << (r & 63)
			page.Count++
		}
	}
	if from > page.Count || (to > 0 && to < from) {
		return page
	}
	n := 0
	for w, word := range marks {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			word &^= 1 << b
			n++
			if n < from {
				continue
			}
			if to > 0 && n > to {
				return page
			}
			page.Docs = append(page.Docs, ix.entries[ix.sorted[w*64+b]].document())
		}
	}
	return page
}

// sorter orders hit slots by the $orderby columns, then by id (rank).
type sorter struct {
	keys [][]cell
	desc []bool
	rank []int32
}

func (s *sorter) compare(a, b int32) int {
	for k, cells := range s.keys {
		c := compareCells(&cells[a], &cells[b])
		if s.desc[k] {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return int(s.rank[a]) - int(s.rank[b])
}

// top returns the first k hits in order, keeping a bounded heap rather
// than sorting every hit: a page near the start of a large result costs a
// pass, not a sort.
func (s *sorter) top(hits []int32, k int) []int32 {
	// h is a max-heap of the k best hits seen so far: its root is the
	// worst of them, the one a better hit replaces.
	h := make([]int32, 0, k)
	worse := func(i, j int) bool { return s.compare(h[i], h[j]) > 0 }
	for _, x := range hits {
		if len(h) < k {
			h = append(h, x)
			for c := len(h) - 1; c > 0; {
				p := (c - 1) / 2
				if !worse(c, p) {
					break
				}
				h[c], h[p] = h[p], h[c]
				c = p
			}
			continue
		}
		if s.compare(x, h[0]) >= 0 {
			continue
		}
		h[0] = x
		for i := 0; ; {
			l, m := 2*i+1, i
			if l < len(h) && worse(l, m) {
				m = l
			}
			if r := l + 1; r < len(h) && worse(r, m) {
				m = r
			}
			if m == i {
				break
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	slices.SortFunc(h, s.compare)
	return h
}
