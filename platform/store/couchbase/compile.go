package couchbase

import (
	"fmt"
	"strings"
	"unicode"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/memindex"
)

// alias names the document in every statement.
const alias = "d"

// Named parameters the statements use besides the filter's literals.
const (
	paramOffset = "offset"
	paramLimit  = "limit"
	paramUser   = "user"
	paramRoles  = "roles"
)

// Compile turns a CIMI query run by who into SQL++ over keyspace (as
// Keyspace returns it): stmt selects the page (id, cas and body of each
// document), countStmt counts every match. Every value from the query goes
// in params, bound as named parameters; attribute names are checked and
// quoted as identifiers, so nothing a caller writes becomes SQL++ syntax.
// countStmt uses every parameter but offset and limit.
//
// The semantics are those of memindex.Match: comparisons are typed
// (IS_STRING, IS_NUMBER, IS_BOOLEAN guard each one), an array matches when
// any element does, null means missing or null, != also matches a missing
// or null attribute, and dates compare as RFC 3339 strings converted to
// milliseconds. Ordering falls back on the document id; paging is
// OFFSET/LIMIT from $first/$last. Non-administrators see the documents
// whose ACL lets them VIEW, as cimi.ACL.Allows decides.
func Compile(keyspace string, q cimi.Query, who cimi.Identity) (stmt, countStmt string, params map[string]any, err error) {
	if err := memindex.Check(q); err != nil {
		return "", "", nil, err
	}
	c := &compiler{params: make(map[string]any)}
	var where []string
	if q.Filter != nil {
		w, err := c.expr(q.Filter)
		if err != nil {
			return "", "", nil, err
		}
		where = append(where, w)
	}
	if !who.IsAdmin() {
		where = append(where, c.acl(who))
	}
	cond := "TRUE"
	if len(where) > 0 {
		cond = strings.Join(where, " AND ")
	}
	from := " FROM " + keyspace + " AS " + alias + " WHERE " + cond

	var order []string
	for _, o := range q.OrderBy {
		p, err := path(o.Attr.Path)
		if err != nil {
			return "", "", nil, err
		}
		dir := " ASC"
		if o.Desc {
			dir = " DESC"
		}
		order = append(order, p+dir)
	}
	order = append(order, "META("+alias+").id ASC")

	first := max(q.First, 1)
	c.params[paramOffset] = first - 1
	page := " OFFSET $" + paramOffset
	if q.Last > 0 {
		c.params[paramLimit] = max(q.Last-first+1, 0)
		page += " LIMIT $" + paramLimit
	}
	stmt = "SELECT META(" + alias + ").id AS id, META(" + alias + ").cas AS cas, " + alias + " AS body" +
		from + " ORDER BY " + strings.Join(order, ", ") + page
	countStmt = "SELECT RAW COUNT(*)" + from
	return stmt, countStmt, c.params, nil
}

type compiler struct {
	params map[string]any
	vars   int // ANY ... SATISFIES variables used so far
}

// param binds a value and returns its reference.
func (c *compiler) param(v any) string {
	name := fmt.Sprintf("v%d", len(c.params)+1)
	for c.params[name] != nil {
		name += "_"
	}
	c.params[name] = v
	return "$" + name
}

func (c *compiler) variable() string {
	c.vars++
	return fmt.Sprintf("e%d", c.vars)
}

func (c *compiler) expr(e cimi.Expr) (string, error) {
	switch x := e.(type) {
	case *cimi.Logical:
		if len(x.Terms) == 0 {
			if x.Op == cimi.And {
				return "TRUE", nil
			}
			return "FALSE", nil
		}
		join := " AND "
		if x.Op == cimi.Or {
			join = " OR "
		}
		terms := make([]string, len(x.Terms))
		for i, t := range x.Terms {
			s, err := c.expr(t)
			if err != nil {
				return "", err
			}
			terms[i] = s
		}
		return "(" + strings.Join(terms, join) + ")", nil
	case *cimi.Comparison:
		return c.comparison(x)
	}
	return "", fmt.Errorf("%w: unknown expression %T", store.ErrInvalid, e)
}

var sqlOps = map[cimi.CmpOp]string{
	cimi.Eq: "=", cimi.Ne: "!=", cimi.Lt: "<", cimi.Le: "<=", cimi.Gt: ">", cimi.Ge: ">=",
}

func (c *compiler) comparison(x *cimi.Comparison) (string, error) {
	p, err := path(x.Attr.Path)
	if err != nil {
		return "", err
	}
	missing := p + " IS MISSING OR " + p + " IS NULL"
	if x.Value.Kind == cimi.Null {
		switch x.Op {
		case cimi.Eq:
			return "(" + missing + ")", nil
		case cimi.Ne:
			return "(" + p + " IS NOT MISSING AND " + p + " IS NOT NULL)", nil
		}
		return "FALSE", nil
	}
	op := sqlOps[x.Op]
	var typed func(v string) string
	switch v := x.Value; v.Kind {
	case cimi.String:
		ref := c.param(v.Str)
		typed = func(e string) string { return "(IS_STRING(" + e + ") AND " + e + " " + op + " " + ref + ")" }
	case cimi.Int:
		ref := c.param(v.Int)
		typed = func(e string) string { return "(IS_NUMBER(" + e + ") AND " + e + " " + op + " " + ref + ")" }
	case cimi.Bool:
		ref := c.param(v.Bool)
		typed = func(e string) string { return "(IS_BOOLEAN(" + e + ") AND " + e + " " + op + " " + ref + ")" }
	case cimi.Date:
		ref := c.param(v.Time.UnixMilli())
		typed = func(e string) string {
			return "(IS_STRING(" + e + ") AND STR_TO_MILLIS(" + e + ") " + op + " " + ref + ")"
		}
	default:
		return "", fmt.Errorf("%w: unknown literal kind %d", store.ErrInvalid, x.Value.Kind)
	}
	v := c.variable()
	s := typed(p) + " OR (IS_ARRAY(" + p + ") AND ANY " + v + " IN " + p + " SATISFIES " + typed(v) + " END)"
	if x.Op == cimi.Ne {
		s = missing + " OR " + s
	}
	return "(" + s + ")", nil
}

// acl is the condition under which who may view a document: it owns it, or
// a rule granting VIEW or more names it or a role it holds.
func (c *compiler) acl(who cimi.Identity) string {
	// The roles it holds (cimi.Identity.HoldsRole): its own, ::USER when
	// authenticated, ::ANON always. A user name is never a role.
	roles := []string{cimi.RoleAnon}
	if who.User != "" {
		roles = append(roles, cimi.RoleUser)
	}
	roles = append(roles, who.Roles...)
	c.params[paramRoles] = roles
	owner := alias + ".`acl`.`owner`"
	matches := func(e string) string {
		s := "(" + e + ".`type` = \"ROLE\" AND " + e + ".`principal` IN $" + paramRoles + ")"
		if who.User != "" {
			s = "(" + e + ".`type` = \"USER\" AND " + e + ".`principal` = $" + paramUser + ") OR " + s
		}
		return s
	}
	if who.User != "" {
		c.params[paramUser] = who.User
	}
	r := c.variable()
	return "(" + matches(owner) +
		" OR ANY " + r + " IN " + alias + ".`acl`.`rules` SATISFIES " + r + ".`right` IN [\"VIEW\", \"MODIFY\", \"ALL\"] AND (" + matches(r) + ") END)"
}

// path quotes an attribute path as a SQL++ field reference on the document.
func path(segments []string) (string, error) {
	if len(segments) == 0 {
		return "", fmt.Errorf("%w: empty attribute", store.ErrInvalid)
	}
	var b strings.Builder
	b.WriteString(alias)
	for _, s := range segments {
		q, err := ident(s)
		if err != nil {
			return "", err
		}
		b.WriteByte('.')
		b.WriteString(q)
	}
	return b.String(), nil
}

// maxIdent bounds an attribute name; CIMI names are short.
const maxIdent = 200

// ident quotes a name as a SQL++ identifier. Names holding a backtick (the
// quote), a backslash (an escape in some SQL++ lexers) or a control
// character are refused rather than escaped: no attribute needs them, and
// refusing leaves nothing to get wrong.
func ident(name string) (string, error) {
	if name == "" || len(name) > maxIdent {
		return "", fmt.Errorf("%w: attribute name %q must be 1 to %d bytes", store.ErrInvalid, name, maxIdent)
	}
	for _, r := range name {
		if r == '`' || r == '\\' || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return "", fmt.Errorf("%w: attribute name %q holds a character that is not allowed", store.ErrInvalid, name)
		}
	}
	return "`" + name + "`", nil
}

// Keyspace returns the quoted keyspace of a collection. The names must be
// valid Couchbase names (as scopeName and collectionName make them).
func Keyspace(bucket, scope, collection string) string {
	return "`" + bucket + "`.`" + scope + "`.`" + collection + "`"
}

// IndexStatements returns the statements creating the indexes of a
// collection: a primary index, so any filter can run, and secondary
// indexes on what most queries filter or order on.
func IndexStatements(keyspace string) []string {
	return []string{
		"CREATE PRIMARY INDEX IF NOT EXISTS ON " + keyspace,
		"CREATE INDEX `ix_acl_owner` IF NOT EXISTS ON " + keyspace + "(`acl`.`owner`.`principal`)",
		"CREATE INDEX `ix_acl_rules` IF NOT EXISTS ON " + keyspace + "(DISTINCT ARRAY r.`principal` FOR r IN `acl`.`rules` END)",
		"CREATE INDEX `ix_created` IF NOT EXISTS ON " + keyspace + "(`created`)",
		"CREATE INDEX `ix_updated` IF NOT EXISTS ON " + keyspace + "(`updated`)",
		"CREATE INDEX `ix_state` IF NOT EXISTS ON " + keyspace + "(`state`)",
	}
}
