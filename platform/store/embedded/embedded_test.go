package embedded_test

import (
	"context"
	"testing"

	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/store/storetest"
	"stratuslab.dev/platform/testkit"
)

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, opener())
}

// TestContractLocalReads runs the suite with Get answered from the index:
// the suite's stores have a single writer, the case the option is for.
func TestContractLocalReads(t *testing.T) {
	t.Parallel()
	storetest.Run(t, opener(embedded.WithLocalReads()))
}

func opener(opts ...embedded.Option) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store {
		_, js := testkit.JetStream(t)
		s, err := embedded.Open(context.Background(), js, "test", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
}
