package cimi

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   url.Values
		want Query
	}{
		{"nothing", url.Values{}, Query{}},
		{"nil", nil, Query{}},
		{"others ignored", url.Values{"$expand": {"*"}, "foo": {"bar"}}, Query{}},
		{"empty values are absent", url.Values{
			"$filter": {"", "  "}, "$orderby": {""}, "$first": {""}, "$last": {" "}, "$select": {""},
		}, Query{}},
		{"one filter", url.Values{"$filter": {"state='STARTED'"}}, Query{
			Filter: cmp(attr("state"), Eq, str("STARTED")),
		}},
		{"filters are and-ed and flattened", url.Values{"$filter": {"a=1 and b=2", "", "c=3 or d=4"}}, Query{
			Filter: and(cmp(attr("a"), Eq, num(1)), cmp(attr("b"), Eq, num(2)),
				or(cmp(attr("c"), Eq, num(3)), cmp(attr("d"), Eq, num(4)))),
		}},
		{"orderby", url.Values{"$orderby": {"name, created:desc,cpu:ASC , acl/owner/principal:Desc"}}, Query{
			OrderBy: []Order{
				{Attr: attr("name")},
				{Attr: attr("created"), Desc: true},
				{Attr: attr("cpu")},
				{Attr: attr("acl", "owner", "principal"), Desc: true},
			},
		}},
		{"orderby repeated and with empty items", url.Values{"$orderby": {"a,", ",b:desc"}}, Query{
			OrderBy: []Order{{Attr: attr("a")}, {Attr: attr("b"), Desc: true}},
		}},
		{"orderby namespace and property", url.Values{"$orderby": {"ns:name:desc,property['a,b:desc']:asc,ns:desc"}}, Query{
			OrderBy: []Order{
				{Attr: attr("ns:name"), Desc: true},
				{Attr: attr("properties", "a,b:desc")},
				{Attr: attr("ns"), Desc: true},
			},
		}},
		{"orderby unknown direction is a namespace", url.Values{"$orderby": {"name:up"}}, Query{
			OrderBy: []Order{{Attr: attr("name:up")}},
		}},
		{"first and last", url.Values{"$first": {"3"}, "$last": {"10"}}, Query{First: 3, Last: 10}},
		{"first only", url.Values{"$first": {"5"}}, Query{First: 5}},
		{"last only", url.Values{"$last": {"5"}}, Query{Last: 5}},
		{"one result", url.Values{"$first": {"7"}, "$last": {"7"}}, Query{First: 7, Last: 7}},
		{"leading zeros", url.Values{"$first": {"007"}}, Query{First: 7}},
		{"select", url.Values{"$select": {"name, state,name", "ns:x,first-name"}}, Query{
			Select: []string{"name", "state", "ns:x", "first-name"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseQuery(tt.in)
			if err != nil {
				t.Fatalf("ParseQuery: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseQuery(%v)\n got %+v (filter %q)\nwant %+v (filter %q)",
					tt.in, got, FormatFilter(got.Filter), tt.want, FormatFilter(tt.want.Filter))
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     url.Values
		param  string
		want   string // substring of Error()
		filter bool   // wraps a *FilterError
	}{
		{"bad filter", url.Values{"$filter": {"a="}}, "$filter",
			"invalid $filter: expected a value after '=' but the filter ends (at position 2)", true},
		{"second filter bad", url.Values{"$filter": {"a=1", "b"}}, "$filter", "(at position 1 of $filter number 2)", true},
		{"filters too long together", url.Values{"$filter": {
			"a='" + strings.Repeat("x", MaxFilterLength/2) + "'",
			"b='" + strings.Repeat("x", MaxFilterLength/2) + "'",
		}}, "$filter", "longer than 16384 bytes together", false},
		{"filters with too many terms together", url.Values{"$filter": {
			strings.Repeat("a=1 or ", MaxFilterTerms-1) + "a=1",
			"b=1",
		}}, "$filter", "1025 comparisons together", false},
		{"orderby dangling colon", url.Values{"$orderby": {"name:"}}, "$orderby", "'name:' is not an attribute: expected a name after the namespace prefix", false},
		{"orderby slash", url.Values{"$orderby": {"acl/:desc"}}, "$orderby", "expected an attribute name after '/'", false},
		{"orderby keyword", url.Values{"$orderby": {"and"}}, "$orderby", "'and' is not an attribute name", false},
		{"orderby value", url.Values{"$orderby": {"'name'"}}, "$orderby", "is not an attribute name", false},
		{"orderby two words", url.Values{"$orderby": {"name state"}}, "$orderby", "is not an attribute name", false},
		{"orderby only direction", url.Values{"$orderby": {":desc"}}, "$orderby", "is not an attribute name", false},
		{"orderby too many", url.Values{"$orderby": {strings.Repeat("a,", MaxOrderKeys+1)}}, "$orderby", "more than 32 sort keys", false},
		{"first zero", url.Values{"$first": {"0"}}, "$first", "must be a positive integer", false},
		{"first negative", url.Values{"$first": {"-1"}}, "$first", "must be a positive integer", false},
		{"first plus", url.Values{"$first": {"+1"}}, "$first", "must be a positive integer", false},
		{"first word", url.Values{"$first": {"ten"}}, "$first", "not 'ten'", false},
		{"first huge", url.Values{"$first": {"99999999999999999999999"}}, "$first", "must be a positive integer", false},
		{"last zero", url.Values{"$last": {"0"}}, "$last", "must be a positive integer", false},
		{"first twice", url.Values{"$first": {"1", "2"}}, "$first", "given 2 times", false},
		{"last before first", url.Values{"$first": {"5"}, "$last": {"4"}}, "$last", "$last=4 is before $first=5", false},
		{"select path", url.Values{"$select": {"name,acl/owner"}}, "$select", "'acl/owner' is not a top-level attribute name", false},
		{"select property", url.Values{"$select": {"property['k']"}}, "$select", "not a top-level attribute name", false},
		{"select star", url.Values{"$select": {"*"}}, "$select", "not a top-level attribute name", false},
		{"select keyword", url.Values{"$select": {"or"}}, "$select", "not a top-level attribute name", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := ParseQuery(tt.in)
			if err == nil {
				t.Fatalf("ParseQuery(%v) = %+v, want an error", tt.in, q)
			}
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParamError: %v", err, err)
			}
			if pe.Param != tt.param || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q (param %s), want param %s and a message containing %q", err, pe.Param, tt.param, tt.want)
			}
			var fe *FilterError
			if got := errors.As(err, &fe); got != tt.filter {
				t.Fatalf("errors.As(*FilterError) = %v, want %v", got, tt.filter)
			}
		})
	}
}
