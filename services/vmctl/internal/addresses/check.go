package addresses

import "context"

// CanAllocate says whether network n has address pools at all, so that a
// request for a network the cloud lacks is refused before anything is
// allocated for it; it does not say whether a free address remains.
func (l *Leases) CanAllocate(n Network) error {
	_, err := l.network(n)
	return err
}

// Of returns the leases machine holds; a machine's boot reads its own
// without decoding every lease of the cloud.
func (l *Leases) Of(ctx context.Context, machine string) ([]Lease, error) {
	have, err := l.query(ctx, eq("machine", machine))
	if err != nil {
		return nil, err
	}
	out := make([]Lease, len(have))
	for i, h := range have {
		out[i] = h.lease
	}
	return out, nil
}
