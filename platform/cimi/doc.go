// Package cimi holds the CIMI resource model shared by every service: the
// common attributes, access control lists and their evaluation, and the query
// parameters ($filter, $orderby, $first, $last, $select) parsed into values
// that both store adapters understand. It has no infrastructure imports.
package cimi
