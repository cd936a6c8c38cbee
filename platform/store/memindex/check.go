package memindex

import (
	"fmt"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

// Check returns ErrInvalid if q holds something no adapter can evaluate: an
// unknown operator or literal kind, an empty attribute path, a nil term.
// The $filter parser never produces these; Check guards against queries
// built by hand.
func Check(q cimi.Query) error {
	if q.Filter != nil {
		if err := checkExpr(q.Filter); err != nil {
			return err
		}
	}
	for _, o := range q.OrderBy {
		if err := checkPath(o.Attr); err != nil {
			return err
		}
	}
	return nil
}

func checkExpr(e cimi.Expr) error {
	switch x := e.(type) {
	case *cimi.Logical:
		if x == nil || (x.Op != cimi.And && x.Op != cimi.Or) {
			return fmt.Errorf("%w: bad logical expression", store.ErrInvalid)
		}
		for _, t := range x.Terms {
			if err := checkExpr(t); err != nil {
				return err
			}
		}
		return nil
	case *cimi.Comparison:
		if x == nil || x.Op < cimi.Eq || x.Op > cimi.Ge {
			return fmt.Errorf("%w: bad comparison", store.ErrInvalid)
		}
		if x.Value.Kind < cimi.String || x.Value.Kind > cimi.Null {
			return fmt.Errorf("%w: unknown literal kind %d", store.ErrInvalid, x.Value.Kind)
		}
		return checkPath(x.Attr)
	}
	return fmt.Errorf("%w: unknown expression %T", store.ErrInvalid, e)
}

func checkPath(a cimi.Attribute) error {
	if len(a.Path) == 0 {
		return fmt.Errorf("%w: empty attribute", store.ErrInvalid)
	}
	for _, s := range a.Path {
		if s == "" {
			return fmt.Errorf("%w: empty attribute name in %q", store.ErrInvalid, a.Path)
		}
	}
	return nil
}
