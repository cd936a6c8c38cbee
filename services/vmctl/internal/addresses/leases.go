package addresses

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
)

// Kind is the store collection of address leases. Each lease is the
// document "AddressLease/<network>-<ip>", e.g. "AddressLease/public-10.1.0.5".
const Kind = "AddressLease"

// Lease is an address held by a machine, with everything the machine needs
// to configure its interface on that network.
type Lease struct {
	Network  Network  `json:"network"`
	IP       string   `json:"ip"`
	MAC      string   `json:"mac"`
	Hostname string   `json:"hostname"`
	FQDN     string   `json:"fqdn"`
	Gateway  string   `json:"gateway,omitempty"`
	Netmask  string   `json:"netmask"`
	DNS      []string `json:"dns,omitempty"`
	Machine  string   `json:"machine"`
	// Created is when the lease was taken. A machine's document may be
	// written after its leases, so a reconciler releasing the leases of
	// machines it cannot find should spare the young ones.
	Created time.Time `json:"created"`
}

// document is a lease as stored.
type document struct {
	ID string `json:"id"`
	Lease
	ACL cimi.ACL `json:"acl"`
}

// held is a stored lease.
type held struct {
	id    string
	rev   uint64
	lease Lease
}

// Leases allocates addresses from the pools of the live configuration and
// releases them, on a store collection that any number of replicas share.
type Leases struct {
	coll  store.Collection
	pools func() []Pool

	// requests holds a token per store request in flight (reads and
	// writes of single documents): a burst of allocations queues here
	// rather than in the store's client, whose requests time out while
	// they queue.
	requests chan struct{}

	mu     sync.Mutex
	locks  map[string]*machineLock
	trying map[pending]bool // addresses being created

	// layouts caches expanded pools by their JSON encoding: a pool is
	// checked and expanded once, not at every allocation.
	layoutsMu sync.Mutex
	layouts   map[string]*layout
}

// maxRequests bounds the store requests in flight per process: enough to
// keep a JetStream server busy, few enough that none waits long in its
// queue.
const maxRequests = 32

// maxLayouts bounds the layout cache; it is emptied when full, which only
// happens as the configuration changes.
const maxLayouts = 64

type machineLock struct {
	sync.Mutex
	waiters int
}

// New returns the leases kept in coll (the collection Kind), allocated from
// the pools that pools returns at the time of each allocation, so that
// configuration changes apply at once. Pools should have passed
// ValidatePools; an invalid pool only makes its network refuse to lease.
func New(coll store.Collection, pools func() []Pool) *Leases {
	return &Leases{
		coll: coll, pools: pools,
		requests: make(chan struct{}, maxRequests),
		locks:    make(map[string]*machineLock),
		trying:   make(map[pending]bool),
		layouts:  make(map[string]*layout),
	}
}

// ID returns the id of the lease document of address ip on network n.
func ID(n Network, ip string) string { return Kind + "/" + string(n) + "-" + ip }

// Allocate leases machine an address on network, or returns the lease it
// already holds there, so that a redelivered command gets the same
// address. A full network is errs.Conflict ("No free address in the public
// network (5 in use).") and leaves nothing behind; it is declared full only
// after looking again for 70 ms, as releases made by other replicas reach
// this one's index a little later.
//
// The address is taken by creating its lease document, which fails if it
// exists: whatever the number of replicas allocating at once, an address
// goes to one machine. Addresses are tried in a random order of each
// machine's own, skipping those that other allocations of this process are
// trying, so that concurrent allocations seldom collide.
//
// Idempotency relies on the store's query index, which sees this process's
// writes at once and other processes' after the watch delay (well under a
// millisecond). Two replicas allocating for one machine at the same time
// try the same address first (the order of the addresses tried is drawn
// from the machine and the network): one creates the lease and the other
// finds it is the machine's. Only if their indexes disagree about that
// address at that moment do both create a lease; each then keeps the lower
// one if it sees the other's, and otherwise the machine holds two
// addresses on the network until Release, which frees both. A store
// failure (an error other than Conflict or Invalid) may leave a lease
// behind, which the next Allocate returns.
func (l *Leases) Allocate(ctx context.Context, network Network, machine string) (Lease, error) {
	if machine == "" {
		return Lease{}, errs.New(errs.Invalid, "An address lease needs the machine it is for.")
	}
	unlock := l.lock(machine)
	defer unlock()
	mine := both(eq("machine", machine), eq("network", string(network)))
	have, err := l.query(ctx, mine)
	if err != nil {
		return Lease{}, err
	}
	if len(have) > 0 {
		return have[0].lease, nil
	}
	pools, err := l.network(network)
	if err != nil {
		return Lease{}, err
	}
	for look := 0; ; {
		lease, done, busy, inUse, err := l.walk(ctx, network, machine, pools, mine)
		switch {
		case done || err != nil:
			return lease, err
		case busy:
			// Other allocations of this process are trying the last
			// free addresses: see how they end.
			if err := sleep(ctx, time.Millisecond); err != nil {
				return Lease{}, err
			}
		case look < fullLooks:
			// Another replica's release reaches this index after the watch
			// delay: look again before calling the network full.
			if err := sleep(ctx, fullPause<<look); err != nil {
				return Lease{}, err
			}
			look++
		default:
			return Lease{}, errs.Errorf(errs.Conflict, "No free address in the %s network (%d in use).", network, inUse)
		}
	}
}

// walk tries the addresses of pools for machine in an order drawn from the
// machine and the network, until one is leased (done), or none is left:
// then busy reports that other allocations of this process were trying
// some, and inUse counts those found leased.
//
// Each address is looked up in the store first, which answers from its
// index when the address is leased and from the bucket itself when the
// index does not know it, so that an allocation costs a few look-ups
// however many addresses are leased. An address no other allocation of
// this process is trying is then taken by creating its lease.
//
// Allocations of one process thus never race for an address. Those of
// different machines try addresses in independent random orders, so they
// seldom collide on several replicas; those of one machine on two replicas
// try the same address first, so that one creates the lease and the other
// finds it is the machine's.
func (l *Leases) walk(ctx context.Context, n Network, machine string, pools []*layout, mine cimi.Expr) (lease Lease, done, busy bool, inUse int, err error) {
	total := 0
	for _, p := range pools {
		total += len(p.entries)
	}
	h := fnv.New64a()
	h.Write([]byte(string(n) + "\x00" + machine))
	order := newShuffle(total, h.Sum64())
	for range total {
		p, e := pick(pools, order.next())
		key := pending{n, e.ip}
		if !l.try(key) {
			busy = true
			continue
		}
		lease, done, err = l.take(ctx, p, e, machine, mine)
		l.untry(key)
		if done || err != nil {
			return lease, done, false, 0, err
		}
		inUse++
	}
	return Lease{}, false, busy, inUse, nil
}

// take leases address e of pool p to machine unless it is leased already:
// done when the machine holds it, whether it just took it or had it.
func (l *Leases) take(ctx context.Context, p *layout, e *entry, machine string, mine cimi.Expr) (Lease, bool, error) {
	id := ID(p.network, e.ip.String())
	h, found, err := l.get(ctx, id, machine)
	if err != nil {
		return Lease{}, false, err
	}
	if !found {
		lease := p.lease(e, machine, time.Now().UTC())
		rev, err := l.create(ctx, id, lease)
		if err == nil {
			lease, err := l.keepOne(ctx, mine, id, rev, lease)
			return lease, err == nil, err
		}
		if !errors.Is(err, store.ErrExists) {
			return Lease{}, false, err
		}
		// Taken meanwhile, by another replica, perhaps for this very
		// machine (one command delivered twice at once, or a create whose
		// answer was lost).
		if h, found, err = l.get(ctx, id, machine); err != nil || !found {
			return Lease{}, false, err
		}
	}
	if h.lease.Machine != machine {
		return Lease{}, false, nil
	}
	lease, err := l.keepOne(ctx, mine, id, h.rev, h.lease)
	return lease, err == nil, err
}

// pick returns entry k of the pools taken one after the other.
func pick(pools []*layout, k int) (*layout, *entry) {
	for _, p := range pools {
		if k < len(p.entries) {
			return p, &p.entries[k]
		}
		k -= len(p.entries)
	}
	panic("addresses: entry out of range")
}

// pending names an address an allocation of this process is trying.
type pending struct {
	network Network
	ip      netip.Addr
}

// try marks an address as tried by the caller, unless another allocation
// of this process is trying it; untry ends the try.
func (l *Leases) try(key pending) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.trying[key] {
		return false
	}
	l.trying[key] = true
	return true
}

func (l *Leases) untry(key pending) {
	l.mu.Lock()
	delete(l.trying, key)
	l.mu.Unlock()
}

// shuffle draws 0..n-1 in a random order fixed by its seed, one at a
// time: a Fisher-Yates shuffle that records only the positions it moved,
// so that drawing a few of many numbers costs a few steps.
type shuffle struct {
	rng   *rand.Rand
	n, i  int
	moved map[int]int
}

func newShuffle(n int, seed uint64) *shuffle {
	return &shuffle{rng: rand.New(rand.NewPCG(seed, 0x5eed)), n: n, moved: map[int]int{}}
}

func (s *shuffle) at(i int) int {
	if v, ok := s.moved[i]; ok {
		return v
	}
	return i
}

// next returns the next number; it must be called at most n times.
func (s *shuffle) next() int {
	j := s.i + s.rng.IntN(s.n-s.i)
	v := s.at(j)
	s.moved[j] = s.at(s.i)
	s.i++
	return v
}

// get reads lease id from the store: found false when there is none. The
// lease is read in full only when it is machine's; a document that is not
// a lease counts as a lease of nobody, so that its address is left alone.
func (l *Leases) get(ctx context.Context, id, machine string) (held, bool, error) {
	if err := l.acquire(ctx); err != nil {
		return held{}, false, err
	}
	d, err := l.coll.Get(ctx, id)
	<-l.requests
	if errors.Is(err, store.ErrNotFound) {
		return held{}, false, nil
	}
	if err != nil {
		return held{}, false, errs.Wrap(errs.Unavailable, err, "Cannot read the address leases; try again")
	}
	// Most look-ups find another machine's lease: read the machine alone
	// first, the rest only for a lease of the machine asking.
	var who struct {
		Machine string `json:"machine"`
	}
	if json.Unmarshal(d.Body, &who) != nil || who.Machine != machine {
		return held{id: id, rev: d.Revision, lease: Lease{Machine: who.Machine}}, true, nil
	}
	var doc document
	if err := json.Unmarshal(d.Body, &doc); err != nil {
		return held{id: id, rev: d.Revision}, true, nil
	}
	return held{id: id, rev: d.Revision, lease: doc.Lease}, true, nil
}

// create writes lease under id: ErrExists when the address is leased.
func (l *Leases) create(ctx context.Context, id string, lease Lease) (uint64, error) {
	body, err := json.Marshal(document{ID: id, Lease: lease, ACL: cimi.OwnedBy(cimi.Identity{})})
	if err != nil {
		return 0, errs.Wrap(errs.Internal, err, "Cannot encode an address lease")
	}
	if err := l.acquire(ctx); err != nil {
		return 0, err
	}
	rev, err := l.coll.Create(ctx, id, body)
	<-l.requests
	if errors.Is(err, store.ErrExists) {
		return 0, err
	}
	if err != nil {
		return 0, errs.Wrap(errs.Unavailable, err, "Cannot record the address lease; try again")
	}
	return rev, nil
}

// A network that seems full is looked at again fullLooks times, after
// fullPause, then twice as long each time (70 ms in all): long enough for
// the index to apply releases made by other replicas, which takes well
// under a millisecond on an idle machine.
const (
	fullLooks = 3
	fullPause = 10 * time.Millisecond
)

// acquire waits for a store request token; the caller gives it back by
// receiving from l.requests.
func (l *Leases) acquire(ctx context.Context) error {
	select {
	case l.requests <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// keepOne makes sure the machine holds one address on the network when
// another replica allocated for it at the same time: of the leases both
// see, the one with the lowest id stays. The lease just created (id, rev)
// is removed if it is not that one.
func (l *Leases) keepOne(ctx context.Context, mine cimi.Expr, id string, rev uint64, lease Lease) (Lease, error) {
	have, err := l.query(ctx, mine)
	if err != nil {
		// The address is the machine's: a failed look for a twin only
		// leaves a twin that Release will free.
		return lease, nil
	}
	if len(have) < 2 || have[0].id == id {
		return lease, nil
	}
	if err := l.acquire(ctx); err != nil {
		return Lease{}, err
	}
	err = l.coll.Delete(ctx, id, rev)
	<-l.requests
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Lease{}, errs.Wrap(errs.Unavailable, err, "Cannot give back a duplicate address lease; try again")
	}
	return have[0].lease, nil
}

// Release gives back every address machine holds, which may be leased
// again at once. Releasing a machine without leases does nothing. The
// leases are found through the store's query index: one created by another
// replica within the watch delay may be missed, and is left to the
// reconciler (see Held).
func (l *Leases) Release(ctx context.Context, machine string) error {
	if machine == "" {
		return nil
	}
	unlock := l.lock(machine)
	defer unlock()
	have, err := l.query(ctx, eq("machine", machine))
	if err != nil {
		return err
	}
	for _, h := range have {
		if err := l.remove(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes lease h unless its address already went to another
// machine: a revision conflict means the copy read was stale, the
// document having been deleted and created again since.
func (l *Leases) remove(ctx context.Context, h held) error {
	rev := h.rev
	for range 10 {
		if err := l.acquire(ctx); err != nil {
			return err
		}
		err := l.coll.Delete(ctx, h.id, rev)
		<-l.requests
		if err == nil || errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return errs.Wrap(errs.Unavailable, err, "Cannot release the address "+h.lease.IP+"; try again")
		}
		doc, err := l.coll.Get(ctx, h.id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return errs.Wrap(errs.Unavailable, err, "Cannot release the address "+h.lease.IP+"; try again")
		}
		var cur document
		if json.Unmarshal(doc.Body, &cur) != nil || cur.Machine != h.lease.Machine {
			return nil
		}
		rev = doc.Revision
	}
	return errs.Errorf(errs.Unavailable, "The lease of %s changes too often to be released; try again.", h.lease.IP)
}

// Held returns every lease, ordered by network then address as text, for
// the reconciler that releases the leases of machines that no longer
// exist. Documents that are not leases are left out.
func (l *Leases) Held(ctx context.Context) ([]Lease, error) {
	have, err := l.query(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Lease, len(have))
	for i, h := range have {
		out[i] = h.lease
	}
	return out, nil
}

// network returns the pools of network n.
func (l *Leases) network(n Network) ([]*layout, error) {
	switch n {
	case Public, Local, Private:
	default:
		return nil, errs.Errorf(errs.Invalid, "There is no %q network; choose %s, %s or %s.", n, Public, Local, Private)
	}
	var out []*layout
	for _, p := range l.pools() {
		if p.Network != n {
			continue
		}
		lay, err := l.layout(p)
		if err != nil {
			return nil, errs.Errorf(errs.Unavailable, "The %s network cannot lease addresses until an administrator fixes ServiceConfiguration/vmctl. %s", n, errs.MessageOf(err))
		}
		out = append(out, lay)
	}
	if len(out) == 0 {
		return nil, errs.Errorf(errs.Invalid, "This cloud has no %s network: no address pool is configured for it.", n)
	}
	return out, nil
}

// layout returns the expansion of p, from the cache when p was seen.
func (l *Leases) layout(p Pool) (*layout, error) {
	key, err := json.Marshal(p)
	if err != nil {
		return p.layout()
	}
	l.layoutsMu.Lock()
	lay := l.layouts[string(key)]
	l.layoutsMu.Unlock()
	if lay != nil {
		return lay, nil
	}
	if lay, err = p.layout(); err != nil {
		return nil, err
	}
	l.layoutsMu.Lock()
	if len(l.layouts) >= maxLayouts {
		clear(l.layouts)
	}
	l.layouts[string(key)] = lay
	l.layoutsMu.Unlock()
	return lay, nil
}

// query returns the leases matching filter (nil: all), in id order.
func (l *Leases) query(ctx context.Context, filter cimi.Expr) ([]held, error) {
	page, err := l.coll.Query(ctx, cimi.Query{Filter: filter}, admin())
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "Cannot read the address leases; try again")
	}
	out := make([]held, 0, len(page.Docs))
	for _, d := range page.Docs {
		var doc document
		if err := json.Unmarshal(d.Body, &doc); err != nil || doc.IP == "" {
			continue
		}
		out = append(out, held{id: d.ID, rev: d.Revision, lease: doc.Lease})
	}
	return out, nil
}

// lock serialises the allocations and releases of one machine in this
// process, so that its own concurrent calls never race each other.
func (l *Leases) lock(machine string) func() {
	l.mu.Lock()
	m := l.locks[machine]
	if m == nil {
		m = &machineLock{}
		l.locks[machine] = m
	}
	m.waiters++
	l.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		l.mu.Lock()
		if m.waiters--; m.waiters == 0 {
			delete(l.locks, machine)
		}
		l.mu.Unlock()
	}
}

// lease is the lease of entry e of the pool for machine.
func (p *layout) lease(e *entry, machine string, now time.Time) Lease {
	return Lease{
		Network: p.network, IP: e.ip.String(), MAC: e.mac, Hostname: e.host, FQDN: p.fqdn(e.host),
		Gateway: p.gateway, Netmask: p.netmask, DNS: slices.Clone(p.dns), Machine: machine, Created: now,
	}
}

// admin is who the service queries as: leases are its own documents.
func admin() cimi.Identity { return cimi.Identity{Roles: []string{cimi.RoleAdmin}} }

// eq is the filter attr='value'.
func eq(attr, value string) cimi.Expr {
	return &cimi.Comparison{Attr: cimi.Attribute{Path: []string{attr}}, Op: cimi.Eq, Value: cimi.Value{Kind: cimi.String, Str: value}}
}

// both is the filter a and b.
func both(a, b cimi.Expr) cimi.Expr { return &cimi.Logical{Op: cimi.And, Terms: []cimi.Expr{a, b}} }
