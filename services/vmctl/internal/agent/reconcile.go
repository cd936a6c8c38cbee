package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"stratuslab.dev/platform/store"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// Report says what one reconciliation of the host found and did.
type Report struct {
	// Domains is how many domains the host runs or keeps defined.
	Domains int
	// Strays are domains no live machine owns; Destroyed those removed.
	Strays, Destroyed []string
	// Lost are machines shown Unknown: their domain is gone or stopped
	// while they should run.
	Lost []string
}

// Reconcile compares the host's domains with the machines placed on it:
// a domain whose machine does not exist, or has ended, is a stray,
// destroyed when destroyStrays is set (reported otherwise); a machine
// that should run whose domain is missing or shut off (the guest powered
// itself off) is shown Unknown, its resources kept until it is killed.
func (a *Agent) Reconcile(ctx context.Context, destroyStrays bool) (Report, error) {
	var rep Report
	if a.cfg.Machines == nil {
		return rep, errors.New("vmctl agent: reconciling needs the Machine collection")
	}
	doms, err := a.cfg.Hypervisor.List(ctx)
	if err != nil {
		return rep, err
	}
	rep.Domains = len(doms)
	state := make(map[string]hypervisor.State, len(doms))
	for _, d := range doms {
		state[d.UUID] = d.State
		doc, err := a.cfg.Machines.Get(ctx, machine.ID(d.UUID))
		var m *machine.Machine
		if err == nil {
			m, err = machine.Decode(doc.Body)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return rep, err
		}
		if m != nil && m.DetailedState != machine.Done && m.DetailedState != machine.Failed {
			continue
		}
		rep.Strays = append(rep.Strays, d.UUID)
		if !destroyStrays {
			continue
		}
		if err := a.destroy(ctx, d.UUID, true); err != nil {
			return rep, fmt.Errorf("vmctl agent: destroy stray domain %s: %w", d.UUID, err)
		}
		rep.Destroyed = append(rep.Destroyed, d.UUID)
	}

	// Machines placed here that should run.
	onHost, err := a.machinesHere(ctx)
	if err != nil {
		return rep, err
	}
	for _, doc := range onHost {
		m, err := machine.Decode(doc.Body)
		if err != nil || m.DetailedState != machine.Running {
			continue
		}
		st, ok := state[m.UUID]
		switch {
		case !ok:
			m.SetState(machine.UnknownD, "its domain is gone from host "+a.cfg.HostID, time.Now())
		case st == hypervisor.Shutoff || st == hypervisor.Crashed:
			m.SetState(machine.UnknownD, "the guest stopped by itself ("+st.String()+")", time.Now())
		default:
			continue
		}
		body, err := m.Encode()
		if err != nil {
			return rep, err
		}
		if _, err := a.cfg.Machines.Put(ctx, doc.ID, body, doc.Revision); err != nil && !errors.Is(err, store.ErrConflict) {
			return rep, err
		}
		rep.Lost = append(rep.Lost, m.UUID)
	}
	// Context disks and logs of domains that are gone.
	entries, _ := os.ReadDir(a.cfg.Dir)
	for _, e := range entries {
		if _, ok := state[e.Name()]; !ok && e.IsDir() && machine.CheckUUID(e.Name()) == nil {
			_ = os.RemoveAll(filepath.Join(a.cfg.Dir, e.Name()))
		}
	}
	return rep, nil
}

// machinesHere returns the documents of the machines placed on this host.
func (a *Agent) machinesHere(ctx context.Context) ([]store.Document, error) {
	var out []store.Document
	const page = 500
	for first := 1; ; first += page {
		p, err := a.cfg.Machines.Query(ctx, hostQuery(a.cfg.HostID, first, first+page-1), adminIdentity)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Docs...)
		if len(p.Docs) < page {
			return out, nil
		}
	}
}
