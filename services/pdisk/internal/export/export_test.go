package export_test

import (
	"testing"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/backendtest"
	"stratuslab.dev/services/pdisk/internal/export"
	"stratuslab.dev/services/pdisk/internal/export/exporttest"
)

func TestLocalContract(t *testing.T) {
	t.Parallel()
	exporttest.Run(t, func(*testing.T) export.Exporter { return export.Local{} }, false)
}

func TestLocalURLs(t *testing.T) {
	t.Parallel()
	id := backendtest.NewID(t)
	for _, tc := range []struct {
		loc  backend.Location
		want string
		code errs.Code
	}{
		{backend.Location{Format: "qcow2", Path: "/var/lib/pdisk/" + id + ".qcow2"}, "file:///var/lib/pdisk/" + id + ".qcow2", ""},
		{backend.Location{Format: "raw", Path: "/dev/vg/" + id}, "file:///dev/vg/" + id, ""},
		{backend.Location{Format: "raw", URL: "rbd:pool/" + id}, "rbd:pool/" + id, ""},
		{backend.Location{Format: "raw"}, "", errs.Internal},
	} {
		got, err := export.Local{}.Export(t.Context(), id, tc.loc)
		if got != tc.want || errs.CodeOf(err) != tc.code {
			t.Errorf("Export(%+v) = %q, %v; want %q, code %q", tc.loc, got, err, tc.want, tc.code)
		}
	}
	if ids, err := (export.Local{}).List(t.Context()); len(ids) != 0 || err != nil {
		t.Errorf("List = %v, %v; want nothing", ids, err)
	}
}
