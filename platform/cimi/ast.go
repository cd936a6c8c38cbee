package cimi

import "time"

// Expr is a node of a parsed $filter expression: a *Logical or a *Comparison.
type Expr interface {
	isExpr()
}

// LogicalOp joins the terms of a Logical expression.
type LogicalOp int

// The logical operators of the filter grammar.
const (
	And LogicalOp = iota + 1
	Or
)

// Logical is the conjunction or disjunction of two or more terms.
type Logical struct {
	Op    LogicalOp
	Terms []Expr
}

// CmpOp is a comparison operator of the filter grammar.
type CmpOp int

// The comparison operators of the filter grammar.
const (
	Eq CmpOp = iota + 1 // =
	Ne                  // !=
	Lt                  // <
	Le                  // <=
	Gt                  // >
	Ge                  // >=
)

// Comparison compares a document attribute with a literal value.
type Comparison struct {
	Attr  Attribute
	Op    CmpOp
	Value Value
}

// Attribute names a field of a document as a path from the document root:
// "state" is Path{"state"}, "acl/owner/principal" is
// Path{"acl","owner","principal"} and "property['k']" is Path{"properties","k"}.
type Attribute struct {
	Path []string
}

// ValueKind says which field of a Value holds the literal.
type ValueKind int

// The literal kinds of the filter grammar.
const (
	String ValueKind = iota + 1
	Int
	Bool
	Date
	Null // matches an absent (or JSON null) attribute
)

// Value is a literal of the filter grammar.
type Value struct {
	Kind ValueKind
	Str  string
	Int  int64
	Bool bool
	Time time.Time // UTC
}

func (*Logical) isExpr()    {}
func (*Comparison) isExpr() {}

// Order is one key of an $orderby parameter.
type Order struct {
	Attr Attribute
	Desc bool
}

// Query is a parsed set of CIMI collection query parameters.
type Query struct {
	Filter  Expr    // nil selects every document
	OrderBy []Order // applied in sequence; ties keep id order
	// First and Last are the 1-based inclusive bounds of the page ($first,
	// $last); zero means unbounded on that side.
	First, Last int
	// Select lists the top-level attributes to return; empty returns all.
	Select []string
}
