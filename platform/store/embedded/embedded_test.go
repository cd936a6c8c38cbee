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

// TestContractStrictReads runs the suite with every Get read from the
// bucket.
func TestContractStrictReads(t *testing.T) {
	t.Parallel()
	storetest.Run(t, opener(embedded.WithStrictReads()))
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
