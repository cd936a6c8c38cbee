package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/cimi"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/marketplace/internal/catalog"
	"stratuslab.dev/services/marketplace/internal/mptest"
	"stratuslab.dev/services/marketplace/internal/upload"
)

// BenchmarkSearch100k: 100,000 entries in the store (written straight
// into the collection, as verified uploads would leave them), queried as
// the gateway queries: a filtered CIMI query over the bus, newest first,
// one page. The target is a p50 of 20 ms or less.
//
//	go test -run '^$' -bench Search100k -benchtime 200x ./internal/controller/
func BenchmarkSearch100k(b *testing.B) {
	e := newEnv(b, 1)
	const n = 100_000
	fill(b, e, n)
	now := time.Now()
	for _, bc := range []struct {
		name string
		q    *commonv1.CollectionQuery
	}{
		{"os-valid-first-page", &commonv1.CollectionQuery{Filter: "os='debian' and status='valid'", OrderBy: []string{"endorsed:desc"}, First: 1, Last: 20}},
		{"os-valid-page-100", &commonv1.CollectionQuery{Filter: "os='debian' and status='valid'", OrderBy: []string{"endorsed:desc"}, First: 1981, Last: 2000}},
		{"endorser-tag-valid", &commonv1.CollectionQuery{Filter: "endorser/email='endorser7@example.org' and tag='tag-7-3' and status='valid'", OrderBy: []string{"endorsed:desc"}, First: 1, Last: 20}},
		{"created-since-all-status", &commonv1.CollectionQuery{Filter: "endorsed>=" + now.AddDate(0, -1, 0).UTC().Format("2006-01-02"), OrderBy: []string{"endorsed:desc"}, First: 1, Last: 20}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := &cimiv1.QueryResourcesRequest{Actor: anon, Kind: catalog.Kind, Query: bc.q}
			var resp cimiv1.ResourceDocuments
			query := func() time.Duration {
				start := time.Now()
				if err := e.client.Request(context.Background(), subject.CimiQuery(subject.Marketplace, subject.OpCimiQuery), anon, req, &resp); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			query() // the index prepares the columns of the query's attributes once
			if resp.Count == 0 || len(resp.Documents) == 0 {
				b.Fatalf("%s: no match", bc.name)
			}
			var lat []time.Duration
			for b.Loop() {
				lat = append(lat, query())
			}
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
			b.ReportMetric(float64(resp.Count), "matches")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// fill writes n entry documents into the first replica's collection: 100
// endorsers, 5 operating systems, 10 tags per endorser, endorsed over two
// years; most valid, some expired, some deprecated. Every document carries
// a real signed entry's XML, so documents have their real size.
func fill(b *testing.B, e *env, n int) {
	b.Helper()
	p := testPKI()
	xml := mptest.Sign(b, mptest.Entry(b, mptest.Image{Content: "benchmark"}), p.alice, time.Now())
	r := rand.New(rand.NewPCG(1, 2))
	oses := []string{"debian", "ubuntu", "centos", "fedora", "scientific"}
	now := time.Now()
	docs := make(chan [2]string, 256)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for d := range docs {
				if _, err := e.r().images.Create(context.Background(), d[0], []byte(d[1])); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	for i := range n {
		endorser := i % 100
		endorsed := now.Add(-time.Duration(r.Int64N(int64(2 * 365 * 24 * time.Hour))))
		valid := endorsed.AddDate(0, 6, 0)
		im := catalog.Image{
			Identifier: fmt.Sprintf("A%026d", i), Endorser: catalog.Endorser{Email: fmt.Sprintf("endorser%d@example.org", endorser),
				Subject: fmt.Sprintf("CN=Endorser %d,O=Bench,C=EU", endorser), Issuer: "CN=Bench CA,O=Bench,C=EU"},
			Endorsed: metadata.FormatTime(endorsed), Valid: metadata.FormatTime(valid), Kind: "machine",
			OS: oses[r.IntN(len(oses))], OSVersion: fmt.Sprint(r.IntN(5) + 8), OSArch: "x86_64", Version: "1.0",
			Format: "qcow2", Compression: "gz", Name: fmt.Sprintf("Image %d", i), Description: "A benchmark image.",
			Tag: fmt.Sprintf("tag-%d-%d", endorser, r.IntN(10)), Bytes: 1 << 30, SHA1: fmt.Sprintf("%040x", i),
			Checksums: []metadata.Checksum{{Algorithm: "SHA-1", Value: fmt.Sprintf("%040x", i)}},
			Locations: []string{fmt.Sprintf("https://appliances.example.org/images/%d.qcow2.gz", i)}, XML: string(xml),
		}
		if r.IntN(10) == 0 {
			im.Deprecated, im.DeprecatedBy = "replaced by a newer version", fmt.Sprintf("user%d", endorser)
		}
		doc, err := im.Attributes()
		if err != nil {
			b.Fatal(err)
		}
		id := catalog.Kind + "/" + uuid.NewString()
		stamp := endorsed.UTC().Format(time.RFC3339Nano)
		doc["id"], doc["resourceURI"], doc["created"], doc["updated"] = id, cimi.ResourceURI(catalog.Kind), stamp, stamp
		doc["acl"] = catalog.SignedACL(fmt.Sprintf("user%d", endorser))
		data, err := json.Marshal(doc)
		if err != nil {
			b.Fatal(err)
		}
		docs <- [2]string{id, string(data)}
	}
	close(docs)
	wg.Wait()
	if got := e.count(); got != n {
		b.Fatalf("%d documents stored, want %d", got, n)
	}
}

// BenchmarkUpload: the rules of an upload (signature verification, the
// endorser and the entry's rules) in process, then whole uploads over the
// bus (cimi_create to the stored document and its completion event), as
// entries per second. The target is 500 validations per second.
//
//	go test -run '^$' -bench Upload -benchtime 400x ./internal/controller/
func BenchmarkUpload(b *testing.B) {
	p := testPKI()
	sign := func(n int) [][]byte {
		out := make([][]byte, n)
		now := time.Now()
		for i := range out {
			out[i] = mptest.Sign(b, mptest.Entry(b, mptest.Image{Content: fmt.Sprintf("upload %d %d", i, rand.Int())}), p.alice, now)
		}
		return out
	}
	b.Run("check", func(b *testing.B) {
		docs := sign(64)
		now := time.Now()
		i := 0
		for b.Loop() {
			if _, err := upload.Check(docs[i%len(docs)], upload.Policy{}, now); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("check-parallel", func(b *testing.B) {
		docs := sign(64)
		now := time.Now()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(docs))
			for pb.Next() {
				if _, err := upload.Check(docs[i%len(docs)], upload.Policy{}, now); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("store", func(b *testing.B) {
		e := newEnv(b, 1)
		docs := sign(b.N)
		b.ResetTimer()
		cmds := make([]string, len(docs))
		for i, doc := range docs {
			body, _ := json.Marshal(map[string]string{"metadata": string(doc)})
			cmds[i] = uuid.NewString()
			rc := &cimiv1.ResourceCommand{Kind: catalog.Kind, Id: cimi.NewID(catalog.Kind), Body: body}
			meta := &commonv1.Meta{CommandId: cmds[i], Actor: alice}
			if err := e.client.Send(context.Background(), subject.CimiCommand(subject.Marketplace, subject.ResourceMachineImage, subject.VerbCimiCreate), meta, rc); err != nil {
				b.Fatal(err)
			}
		}
		for _, id := range cmds {
			if o := e.wait(id); !o.ok() {
				b.Fatalf("upload refused: %s", o.message)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}
