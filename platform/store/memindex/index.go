package memindex

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unique"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

// Index holds the current documents of one collection, decoded, and answers
// queries over them. It is safe for concurrent use.
//
// Writes are guarded by revision: a document is replaced only by a higher
// revision, and a deletion is remembered (as a tombstone) so that a late
// write of an older revision cannot bring the document back. This lets two
// sources, the writer itself and a change feed, apply the same changes in
// any order.
//
// Layout, for scans that stay in cache: each document has a slot, and what a
// query reads is kept in arrays indexed by slot — the ACL, and one column of
// decoded cells per attribute queried so far (built on first use, kept
// current by every write, the least recently used dropped beyond
// maxColumns). A query walks the slots in order; the rank of each slot in
// id order, recomputed after writes, gives id order without sorting.
type Index struct {
	mu   sync.RWMutex
	byID map[string]*entry
	// gone holds the revision each deleted id was deleted at.
	gone map[string]uint64

	// By slot.
	entries []*entry // nil for a free slot
	guards  []guard
	rank    []int32 // position in sorted; valid for settled slots
	cols    []*column

	// sorted holds the settled slots in id order. Slots written since the
	// last settle wait in fresh; slots deleted since then wait in freed
	// (still listed in sorted, so not reusable) and then move to free.
	sorted []int32
	fresh  []int32
	freed  []int32
	free   []int32
	dirty  bool

	clock atomic.Int64 // ticks of column use, for eviction
}

// maxColumns bounds the attribute columns an index keeps (each costs about
// 56 bytes per document), so that queries naming ever new attributes cannot
// grow memory without limit; services query far fewer attributes.
const maxColumns = 16

// entry is one document as the index keeps it.
type entry struct {
	id   string
	rev  uint64
	body json.RawMessage
	doc  map[string]any
	slot int32
}

// guard is what a query needs to decide visibility: the document's ACL
// reduced to the rules that can grant VIEW to a non-administrator.
type guard struct {
	acl    cimi.ACL
	hasACL bool // documents without an ACL are visible to admins only
	live   bool
}

// column holds one attribute of every slot.
type column struct {
	key   string
	path  []string
	cells []cell
	used  atomic.Int64
}

// New returns an empty index.
func New() *Index {
	return &Index{byID: make(map[string]*entry), gone: make(map[string]uint64)}
}

// Decode decodes a JSON object body as the index keeps it: numbers become
// int64 when they are integers that fit, float64 otherwise.
func Decode(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return nil, fmt.Errorf("%w: not a JSON object", store.ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", store.ErrInvalid)
	}
	normalize(doc)
	return doc, nil
}

// Put stores body as revision rev of document id, unless the index already
// holds id at a revision >= rev or saw it deleted at a revision >= rev. doc
// is the decoded body if the caller has it (as from store.PrepareBody or
// Decode; the index takes ownership and may change it), nil to decode body
// here. The index keeps body as given: the caller must not modify it later.
func (ix *Index) Put(id string, rev uint64, body json.RawMessage, doc map[string]any) error {
	if doc == nil {
		// A change feed echoes the writes already applied: skip decoding
		// what would be ignored.
		if ix.holds(id, rev) {
			return nil
		}
		var err error
		if doc, err = Decode(body); err != nil {
			return fmt.Errorf("index %q: %w", id, err)
		}
	} else {
		normalize(doc)
	}
	g := guardOf(doc)

	ix.mu.Lock()
	defer ix.mu.Unlock()
	e := ix.byID[id]
	if e != nil {
		if rev <= e.rev {
			return nil
		}
		e.rev, e.body, e.doc = rev, body, doc
	} else {
		if gone, ok := ix.gone[id]; ok {
			if rev <= gone {
				return nil
			}
			delete(ix.gone, id)
		}
		e = &entry{id: id, rev: rev, body: body, doc: doc, slot: ix.allocate()}
		ix.byID[id] = e
		ix.entries[e.slot] = e
		ix.fresh = append(ix.fresh, e.slot)
		ix.dirty = true
	}
	ix.guards[e.slot] = g
	for _, c := range ix.cols {
		c.cells[e.slot] = cellOf(lookup(doc, c.path))
	}
	return nil
}

// holds reports whether the index has id at revision rev or later, or saw
// it deleted at rev or later.
func (ix *Index) holds(id string, rev uint64) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if e := ix.byID[id]; e != nil {
		return e.rev >= rev
	}
	gone, ok := ix.gone[id]
	return ok && gone >= rev
}

// allocate returns a free slot, growing the slot arrays if needed.
func (ix *Index) allocate() int32 {
	if n := len(ix.free); n > 0 {
		s := ix.free[n-1]
		ix.free = ix.free[:n-1]
		return s
	}
	ix.entries = append(ix.entries, nil)
	ix.guards = append(ix.guards, guard{})
	ix.rank = append(ix.rank, -1)
	for _, c := range ix.cols {
		c.cells = append(c.cells, cell{})
	}
	return int32(len(ix.entries) - 1)
}

// Delete records that document id is gone as of revision rev: it is removed
// unless the index holds a later revision of it.
func (ix *Index) Delete(id string, rev uint64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if e := ix.byID[id]; e != nil {
		if e.rev > rev {
			return
		}
		delete(ix.byID, id)
		ix.entries[e.slot] = nil
		ix.guards[e.slot] = guard{}
		for _, c := range ix.cols {
			c.cells[e.slot] = cell{}
		}
		ix.freed = append(ix.freed, e.slot)
		ix.dirty = true
	}
	ix.gone[id] = max(ix.gone[id], rev)
}

// Get returns the indexed document id.
func (ix *Index) Get(id string) (store.Document, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	e := ix.byID[id]
	if e == nil {
		return store.Document{}, false
	}
	return e.document(), true
}

// Len returns the number of documents in the index.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byID)
}

func (e *entry) document() store.Document {
	return store.Document{ID: e.id, Revision: e.rev, Body: bytes.Clone(e.body)}
}

// settle brings sorted and rank up to date with the writes since the last
// call. The caller holds the write lock.
func (ix *Index) settle() {
	if !ix.dirty {
		return
	}
	old := ix.sorted
	if len(ix.freed) > 0 {
		old = slices.DeleteFunc(old, func(s int32) bool { return !ix.guards[s].live })
	}
	fresh := slices.DeleteFunc(ix.fresh, func(s int32) bool { return !ix.guards[s].live })
	idOf := func(s int32) string { return ix.entries[s].id }
	slices.SortFunc(fresh, func(a, b int32) int { return strings.Compare(idOf(a), idOf(b)) })

	merged := make([]int32, 0, len(old)+len(fresh))
	if len(fresh)*bitsLen(len(old)) < len(old) {
		// Few new ids: find where each goes rather than comparing every id.
		lo := 0
		for _, s := range fresh {
			id := idOf(s)
			p := lo + sort.Search(len(old)-lo, func(k int) bool { return idOf(old[lo+k]) > id })
			merged = append(merged, old[lo:p]...)
			merged = append(merged, s)
			lo = p
		}
		merged = append(merged, old[lo:]...)
	} else {
		i, j := 0, 0
		for i < len(old) && j < len(fresh) {
			if idOf(old[i]) <= idOf(fresh[j]) {
				merged = append(merged, old[i])
				i++
			} else {
				merged = append(merged, fresh[j])
				j++
			}
		}
		merged = append(merged, old[i:]...)
		merged = append(merged, fresh[j:]...)
	}
	// Ranks before the first change of position are still right.
	first := 0
	if len(ix.freed) == 0 {
		for first < len(old) && merged[first] == old[first] {
			first++
		}
	}
	for r := first; r < len(merged); r++ {
		ix.rank[merged[r]] = int32(r)
	}
	for _, s := range ix.freed {
		ix.rank[s] = -1
	}
	ix.sorted = merged
	ix.free = append(ix.free, ix.freed...)
	ix.fresh, ix.freed, ix.dirty = ix.fresh[:0], ix.freed[:0], false
}

func bitsLen(n int) int {
	b := 1
	for n > 1 {
		n >>= 1
		b++
	}
	return b
}

// column returns the column of path, nil if there is none yet. The caller
// holds a lock.
func (ix *Index) column(key string) *column {
	for _, c := range ix.cols {
		if c.key == key {
			c.used.Store(ix.clock.Add(1))
			return c
		}
	}
	return nil
}

// addColumn builds the column of path, dropping the least recently used one
// beyond maxColumns (never one of keep). The caller holds the write lock.
func (ix *Index) addColumn(key string, path []string, keep map[string]bool) *column {
	c := &column{key: key, path: path, cells: make([]cell, len(ix.entries))}
	for s, e := range ix.entries {
		if e != nil {
			c.cells[s] = cellOf(lookup(e.doc, path))
		}
	}
	c.used.Store(ix.clock.Add(1))
	if len(ix.cols) >= maxColumns {
		victim := -1
		for i, old := range ix.cols {
			if !keep[old.key] && (victim < 0 || old.used.Load() < ix.cols[victim].used.Load()) {
				victim = i
			}
		}
		if victim >= 0 {
			ix.cols = slices.Delete(ix.cols, victim, victim+1)
		}
	}
	ix.cols = append(ix.cols, c)
	return c
}

// guardOf reads the "acl" attribute of a decoded document into a guard.
// Rules that cannot grant VIEW to anyone but an administrator are dropped
// (unknown rights, the ::ADMIN role, since admins see everything anyway),
// so that the common ACL, an owner and an ::ADMIN rule, needs no rule scan.
func guardOf(doc map[string]any) guard {
	m, ok := doc["acl"].(map[string]any)
	if !ok {
		return guard{live: true}
	}
	g := guard{hasACL: true, live: true}
	if owner, ok := m["owner"].(map[string]any); ok {
		p, _ := owner["principal"].(string)
		typ, _ := owner["type"].(string)
		g.acl.Owner = cimi.Owner{Principal: intern(p), Type: cimi.PrincipalType(intern(typ))}
	}
	rules, _ := m["rules"].([]any)
	for _, r := range rules {
		rm, ok := r.(map[string]any)
		if !ok {
			continue
		}
		p, _ := rm["principal"].(string)
		typ, _ := rm["type"].(string)
		right, _ := rm["right"].(string)
		rule := cimi.Rule{Principal: intern(p), Type: cimi.PrincipalType(intern(typ)), Right: cimi.Right(intern(right))}
		switch rule.Right {
		case cimi.View, cimi.Modify, cimi.All:
		default:
			continue
		}
		if rule.Type == cimi.Role && rule.Principal == cimi.RoleAdmin {
			continue
		}
		g.acl.Rules = append(g.acl.Rules, rule)
	}
	return g
}

func intern(s string) string {
	if len(s) > internMax {
		return s
	}
	return unique.Make(s).Value()
}

// visible reports whether who may view the document guarded by g, by the
// same rule as every other ACL check (cimi.ACL.Allows with VIEW).
func visible(g *guard, who *cimi.Identity, admin bool) bool {
	if !g.live {
		return false
	}
	if admin {
		return true
	}
	return g.hasACL && g.acl.Allows(*who, cimi.View)
}
