package export

import (
	"context"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
)

// Exporter makes volumes reachable by VM hosts other than the storage host.
// Ids are volume uuids as backend.ValidID accepts them; other ids are
// refused with errs.Invalid. Calls for one volume must not overlap (pdisk
// handles a volume's commands one at a time); calls for different volumes,
// from one process or several sharing a transport, may.
type Exporter interface {
	// Name is the exporter's name in configuration: "local" or "iscsi".
	Name() string
	// Export makes the volume with this uuid, stored at loc, reachable and
	// returns its transport URL (turl). Exporting an exported volume returns
	// the same URL.
	Export(ctx context.Context, uuid string, loc backend.Location) (turl string, err error)
	// Unexport withdraws the volume; unexporting what is not exported
	// succeeds.
	Unexport(ctx context.Context, uuid string) error
	// List returns the uuids currently exported, in no particular order, for
	// the reconciler.
	List(ctx context.Context) ([]string, error)
}

// Local is the exporter for VM hosts that see the storage directory
// themselves (a shared file system, or the storage host itself): it hands
// out the volume's own file as a file:// URL, or a network backend's URL,
// and has nothing to set up or withdraw.
type Local struct{}

var _ Exporter = Local{}

// Name returns "local".
func (Local) Name() string { return "local" }

// Export returns "file://" followed by loc's path, or loc's URL for a
// network backend.
func (Local) Export(_ context.Context, uuid string, loc backend.Location) (string, error) {
	if err := backend.CheckID(uuid); err != nil {
		return "", err
	}
	switch {
	case loc.Path != "":
		return "file://" + loc.Path, nil
	case loc.URL != "":
		return loc.URL, nil
	}
	return "", errs.Errorf(errs.Internal, "volume %s cannot be exported: its backend gave neither a path nor a URL", uuid)
}

// Unexport only checks uuid: nothing was set up.
func (Local) Unexport(_ context.Context, uuid string) error {
	return backend.CheckID(uuid)
}

// List returns nothing: Local keeps no exports to withdraw.
func (Local) List(context.Context) ([]string, error) { return nil, nil }
