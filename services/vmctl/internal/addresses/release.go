package addresses

import "context"

// ReleaseOne gives back the address of lease alone, if it is still
// lease.Machine's; it does nothing when the address is free or went to
// another machine. A reconciler uses it for a machine holding a second
// address on a network (two replicas allocating for it at once), which
// Release would free along with the one the machine uses.
func (l *Leases) ReleaseOne(ctx context.Context, lease Lease) error {
	if lease.Machine == "" {
		return nil
	}
	unlock := l.lock(lease.Machine)
	defer unlock()
	h, found, err := l.get(ctx, ID(lease.Network, lease.IP), lease.Machine)
	if err != nil || !found || h.lease.Machine != lease.Machine {
		return err
	}
	return l.remove(ctx, h)
}
