package addresses

// CanAllocate says whether network n has address pools at all, so that a
// request for a network the cloud lacks is refused before anything is
// allocated for it; it does not say whether a free address remains.
func (l *Leases) CanAllocate(n Network) error {
	_, err := l.network(n)
	return err
}
