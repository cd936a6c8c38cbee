package resource

import (
	"context"
	"fmt"
	"testing"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// benchProvider returns a provider of Notes over n documents owned by
// alice, in the embedded store, without a bus (reads need none).
func benchProvider(b *testing.B, n int) *Provider {
	b.Helper()
	_, js := testkit.JetStream(b)
	ctx := context.Background()
	st, err := embedded.Open(ctx, js, service, embedded.WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	coll, err := st.Collection(ctx, "Note")
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		body := fmt.Sprintf(`{"id":"Note/%d","name":"n%d","size":%d,"_command":"c",`+
			`"acl":{"owner":{"principal":"alice","type":"USER"},"rules":[{"principal":"::ADMIN","type":"ROLE","right":"ALL"}]}}`, i, i, i)
		if _, err := coll.Create(ctx, fmt.Sprintf("Note/%d", i), []byte(body)); err != nil {
			b.Fatal(err)
		}
	}
	p, err := New(nil, service, quiet(), notes(coll)...)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkGet reads one document as its owner.
func BenchmarkGet(b *testing.B) {
	p := benchProvider(b, 100)
	who := cimi.Identity{User: "alice"}
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := p.Get(ctx, who, "Note/42"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQuery reads a page of 20 of 1000 documents, filtered and
// sorted, as their owner.
func BenchmarkQuery(b *testing.B) {
	p := benchProvider(b, 1000)
	who := cimi.Identity{User: "alice"}
	q := &commonv1.CollectionQuery{Filter: "size>=100", OrderBy: []string{"size:desc"}, First: 1, Last: 20}
	ctx := context.Background()
	for b.Loop() {
		n, docs, err := p.Query(ctx, who, "Note", q)
		if err != nil || n != 900 || len(docs) != 20 {
			b.Fatal(n, len(docs), err)
		}
	}
}
