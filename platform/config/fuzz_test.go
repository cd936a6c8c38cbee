package config

import (
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary config files, environments and command lines to
// the loader. It must never panic, and whatever it accepts must be valid
// and survive being written back as a config file and read again.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("[DEFAULT]\ndata_dir = /srv\nstore = embedded\n[pdisk]\nlog_format = json\n"), "", "")
	f.Add([]byte("[DEFAULT]\nstore = couchbase\ncouchbase_url = couchbases://a:1,b\ncouchbase_user = u\ncouchbase_password = p#w\n"), "STRATUSLAB_LOG_LEVEL=debug", "--listen 0.0.0.0:80")
	f.Add([]byte("[pdisk]\nnats_urls = nats://a, tls://b:4222,c\nnats_listen = none\n"), "STRATUSLAB_NATS_LISTEN=none", "--nats-url=")
	f.Add([]byte("; only comments\n# here\n"), "", "-h")
	f.Add([]byte("[pdisk\nstore = mongo\n"), "", "")
	f.Add([]byte("k = before section\n"), "", "")
	f.Add([]byte("[DEFAULT]\nstor = typo\n"), "", "")
	f.Fuzz(func(t *testing.T, data []byte, envText, argText string) {
		env := map[string]string{"HOME": "/home/u"}
		for _, kv := range strings.Split(envText, "\n") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		delete(env, "STRATUSLAB_NATS_CREDS") // keep the fuzzer off the file system
		args := append([]string{"--config", "/fuzz.cfg"}, strings.Fields(argText)...)
		b, err := fuzzLoader(env, data).load(args)
		if err != nil {
			return
		}
		if b.NATSCreds != "" {
			return // valid only because such a file exists here
		}
		rt, err := fuzzLoader(map[string]string{}, render(b)).load([]string{"--config", "/fuzz.cfg"})
		if err != nil {
			t.Fatalf("accepted settings rejected when written back: %v\n%s", err, render(b))
		}
		rt.Args, b.Args = nil, nil
		if !reflect.DeepEqual(rt, b) {
			t.Fatalf("round trip changed the settings:\n got %#v\nwant %#v", rt, b)
		}
	})
}

func fuzzLoader(env map[string]string, data []byte) loader {
	return loader{
		service:  "pdisk",
		getenv:   func(k string) string { return env[k] },
		output:   io.Discard,
		root:     false,
		hostname: "host-1",
		readFile: func(path string) ([]byte, error) {
			if path == "/fuzz.cfg" {
				return data, nil
			}
			return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		},
	}
}

// render writes b as a config file's [pdisk] section.
func render(b Bootstrap) []byte {
	listen := b.NATSListen
	if listen == "" {
		listen = "none"
	}
	var s strings.Builder
	s.WriteString("[pdisk]\n")
	for _, kv := range [][2]string{
		{"data_dir", b.DataDir}, {"listen", b.Listen}, {"admin_listen", b.AdminListen},
		{"nats_urls", strings.Join(b.NATSURLs, ",")}, {"nats_listen", listen},
		{"store", b.Store}, {"couchbase_url", b.CouchbaseURL}, {"couchbase_user", b.CouchbaseUser},
		{"couchbase_password", string(b.CouchbasePassword)}, {"couchbase_bucket", b.CouchbaseBucket},
		{"log_format", b.LogFormat}, {"log_level", b.LogLevel}, {"instance", b.Instance},
	} {
		fmt.Fprintf(&s, "%s = %s\n", kv[0], kv[1])
	}
	return []byte(s.String())
}
