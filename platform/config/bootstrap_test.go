package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testFile = "/etc/test/stratuslab.cfg"

// testLoader returns a loader for service with the given environment and
// config file contents at testFile ("" contents means no file).
func testLoader(service string, env map[string]string, file string) (loader, *bytes.Buffer) {
	var out bytes.Buffer
	return loader{
		service:     service,
		getenv:      func(k string) string { return env[k] },
		output:      &out,
		defaultFile: testFile,
		root:        false,
		hostname:    "host-1",
		readFile: func(path string) ([]byte, error) {
			if path == testFile && file != "" {
				return []byte(file), nil
			}
			return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		},
	}, &out
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		service string
		root    bool
		want    Bootstrap
	}{
		{name: "user", service: "pdisk", want: Bootstrap{
			DataDir: "/home/u/.stratuslab/data", Listen: "127.0.0.1:8080", AdminListen: "127.0.0.1:9603", TLS: "auto",
			NATSListen: "127.0.0.1:4222", Store: "embedded", CouchbaseBucket: "stratuslab", Storage: "qcow2", TGTControlPort: "0", LibvirtURI: "test:///default", VmctlRoles: []string{"scheduler", "agent"},
			LogFormat: "text", LogLevel: "info", Instance: "host-1",
		}},
		{name: "root, unknown service", service: "billing", root: true, want: Bootstrap{
			DataDir: "/var/lib/stratuslab", Listen: "127.0.0.1:8080", AdminListen: "127.0.0.1:0", TLS: "auto",
			NATSListen: "127.0.0.1:4222", Store: "embedded", CouchbaseBucket: "stratuslab", Storage: "qcow2", TGTControlPort: "0", LibvirtURI: "test:///default", VmctlRoles: []string{"scheduler", "agent"},
			LogFormat: "text", LogLevel: "info", Instance: "host-1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, _ := testLoader(tt.service, map[string]string{"HOME": "/home/u"}, "")
			l.root = tt.root
			got, err := l.load(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := `
# site-wide settings
[DEFAULT]
data_dir = /srv/default
store = couchbase
couchbase_url = couchbase://cb1,cb2
couchbase_user = stratus
couchbase_password = from#file
log_level = debug
nats_urls = nats://a:4222, nats://b:4222

[pdisk]
data_dir: /srv/pdisk
Log_Format = json

[vmctl]
data_dir = /srv/vmctl
some_future_key = ignored outside [DEFAULT] and [pdisk]
`
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, b Bootstrap)
	}{
		{name: "file: service section over DEFAULT", check: func(t *testing.T, b Bootstrap) {
			want := Bootstrap{
				DataDir: "/srv/pdisk", Listen: "127.0.0.1:8080", AdminListen: "127.0.0.1:9603", TLS: "auto",
				NATSURLs: []string{"nats://a:4222", "nats://b:4222"}, NATSListen: "127.0.0.1:4222",
				Store: "couchbase", CouchbaseURL: "couchbase://cb1,cb2", CouchbaseUser: "stratus",
				CouchbasePassword: "from#file", CouchbaseBucket: "stratuslab", Storage: "qcow2", TGTControlPort: "0", LibvirtURI: "test:///default", VmctlRoles: []string{"scheduler", "agent"},
				LogFormat: "json", LogLevel: "debug", Instance: "host-1", ConfigFile: testFile,
			}
			if !reflect.DeepEqual(b, want) {
				t.Errorf("got  %#v\nwant %#v", b, want)
			}
		}},
		{name: "environment over file", env: map[string]string{"STRATUSLAB_DATA_DIR": "/env", "STRATUSLAB_NATS_URLS": "nats://c"},
			check: func(t *testing.T, b Bootstrap) {
				if b.DataDir != "/env" || !reflect.DeepEqual(b.NATSURLs, []string{"nats://c"}) || b.LogFormat != "json" {
					t.Errorf("got data_dir %q nats %v log_format %q", b.DataDir, b.NATSURLs, b.LogFormat)
				}
			}},
		{name: "flags over environment", env: map[string]string{"STRATUSLAB_DATA_DIR": "/env", "STRATUSLAB_STORE": "couchbase"},
			args: []string{"--data-dir", "/flag/", "--store=embedded", "-nats-url", "", "extra", "args"},
			check: func(t *testing.T, b Bootstrap) {
				if b.DataDir != "/flag" || b.Store != "embedded" || b.NATSURLs != nil {
					t.Errorf("got data_dir %q store %q nats %v", b.DataDir, b.Store, b.NATSURLs)
				}
				if !reflect.DeepEqual(b.Args, []string{"extra", "args"}) {
					t.Errorf("Args = %q", b.Args)
				}
			}},
		{name: "empty environment is unset", env: map[string]string{"STRATUSLAB_DATA_DIR": ""},
			check: func(t *testing.T, b Bootstrap) {
				if b.DataDir != "/srv/pdisk" {
					t.Errorf("data_dir = %q", b.DataDir)
				}
			}},
		{name: "nats listen none", env: map[string]string{"STRATUSLAB_NATS_LISTEN": "none"},
			check: func(t *testing.T, b Bootstrap) {
				if b.NATSListen != "" {
					t.Errorf("nats_listen = %q, want empty", b.NATSListen)
				}
			}},
		{name: "nats listen explicit empty flag", args: []string{"--nats-listen="},
			check: func(t *testing.T, b Bootstrap) {
				if b.NATSListen != "" {
					t.Errorf("nats_listen = %q, want empty", b.NATSListen)
				}
			}},
		{name: "image_cas: flag over environment", env: map[string]string{"STRATUSLAB_IMAGE_CAS": "/env/cas"},
			args: []string{"--image-cas", "/etc/grid-security/certificates"},
			check: func(t *testing.T, b Bootstrap) {
				if b.ImageCAs != "/etc/grid-security/certificates" {
					t.Errorf("image_cas = %q", b.ImageCAs)
				}
			}},
		{name: "image_cas from the environment", env: map[string]string{"STRATUSLAB_IMAGE_CAS": "/env/cas.pem"},
			check: func(t *testing.T, b Bootstrap) {
				if b.ImageCAs != "/env/cas.pem" {
					t.Errorf("image_cas = %q", b.ImageCAs)
				}
			}},
		{name: "explicit empty --config reads no file", args: []string{"--config", ""},
			check: func(t *testing.T, b Bootstrap) {
				if b.ConfigFile != "" || b.Store != "embedded" {
					t.Errorf("config %q store %q, want no file", b.ConfigFile, b.Store)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"HOME": "/home/u"}
			for k, v := range tt.env {
				env[k] = v
			}
			l, _ := testLoader("pdisk", env, file)
			b, err := l.load(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, b)
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want []string // every one must appear in the error
	}{
		{name: "bad store in file", file: "[pdisk]\nstore = mongo\n",
			want: []string{`config /etc/test/stratuslab.cfg:2: [pdisk] store: must be "embedded" or "couchbase", got "mongo"`}},
		{name: "unknown key", file: "[DEFAULT]\nlisten = :80\nstor = couchbase\n",
			want: []string{"config /etc/test/stratuslab.cfg:3: [DEFAULT] stor: unknown key (known keys: data_dir,"}},
		{name: "syntax", file: "[pdisk\n", want: []string{`config /etc/test/stratuslab.cfg:1: section header "[pdisk" has no closing ']'`}},
		{name: "environment", env: map[string]string{"STRATUSLAB_LOG_LEVEL": "loud"},
			want: []string{`environment STRATUSLAB_LOG_LEVEL: must be "debug", "info", "warn" or "error", got "loud"`}},
		{name: "flag", args: []string{"--listen", "8080"}, want: []string{`flag --listen: must be HOST:PORT (e.g. 127.0.0.1:8080), got "8080"`}},
		{name: "port range", args: []string{"--admin-listen", "127.0.0.1:70000"}, want: []string{`flag --admin-listen: port must be a number from 0 to 65535, got "70000"`}},
		{name: "couchbase needs settings", args: []string{"--store", "couchbase"}, want: []string{
			`flag --store: store "couchbase" needs couchbase_url: give --couchbase-url, STRATUSLAB_COUCHBASE_URL or couchbase_url in the config file`,
			`flag --store: store "couchbase" needs couchbase_password`,
		}},
		{name: "bad couchbase url", env: map[string]string{"STRATUSLAB_COUCHBASE_URL": "mongodb://x"},
			want: []string{`environment STRATUSLAB_COUCHBASE_URL: "mongodb://x": scheme must be couchbase or couchbases`}},
		{name: "bad nats url", args: []string{"--nats-url", "nats://a:4222,http://b"},
			want: []string{`flag --nats-url: "http://b": scheme must be nats, tls, ws or wss`}},
		{name: "missing creds file", file: "[DEFAULT]\nnats_creds = /nonexistent/x.creds\n",
			want: []string{"config /etc/test/stratuslab.cfg:2: [DEFAULT] nats_creds: cannot read /nonexistent/x.creds: no such file or directory"}},
		{name: "no HOME", env: map[string]string{"HOME": ""},
			want: []string{"default data_dir: must not be empty: give --data-dir, STRATUSLAB_DATA_DIR or data_dir in the config file"}},
		{name: "several problems at once", file: "[pdisk]\nlog_format = xml\nlog_level = x\n", want: []string{
			`:2: [pdisk] log_format: must be "text" or "json", got "xml"`, `:3: [pdisk] log_level: must be`,
		}},
		{name: "named file missing", env: map[string]string{"STRATUSLAB_CONFIG": "/nonexistent.cfg"},
			want: []string{"config /nonexistent.cfg: open /nonexistent.cfg: file does not exist"}},
		{name: "unknown flag", args: []string{"--sotre", "x"}, want: []string{"pdisk: command line: flag provided but not defined: -sotre (see -h)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"HOME": "/home/u"}
			for k, v := range tt.env {
				env[k] = v
			}
			l, _ := testLoader("pdisk", env, tt.file)
			_, err := l.load(tt.args)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	l, out := testLoader("vmctl", map[string]string{"HOME": "/home/u"}, "")
	_, err := l.load([]string{"-h"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: error %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{
		"Usage: vmctl [flags]", "[DEFAULT] then [vmctl]",
		"--data-dir DIR", "STRATUSLAB_DATA_DIR, key data_dir; default \"/home/u/.stratuslab/data\"",
		"--admin-listen HOST:PORT", `default "127.0.0.1:9604"`, "--config FILE", "STRATUSLAB_CONFIG",
		"--nats-url URL,...", "key nats_urls; default none",
		"--image-cas PATH", "STRATUSLAB_IMAGE_CAS, key image_cas; default none",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSecretRedacted(t *testing.T) {
	t.Parallel()
	b := Bootstrap{CouchbasePassword: "s3cret", CouchbaseUser: "u"}
	var js, txt bytes.Buffer
	slog.New(slog.NewJSONHandler(&js, nil)).Info("settings", "bootstrap", b)
	slog.New(slog.NewTextHandler(&txt, nil)).Info("settings", "bootstrap", b)
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", b), "%+v": fmt.Sprintf("%+v", b), "%#v": fmt.Sprintf("%#v", b),
		"%s": fmt.Sprintf("password %s", b.CouchbasePassword), "json": string(raw), "slog json": js.String(), "slog text": txt.String(),
	} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("%s shows the password: %s", name, s)
		}
		if !strings.Contains(s, "********") {
			t.Errorf("%s does not show the redaction: %s", name, s)
		}
	}
	if string(b.CouchbasePassword) != "s3cret" {
		t.Error("the value itself was lost")
	}
}

// TestLoadFile runs the exported Load on a real file.
func TestLoadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "stratuslab.cfg")
	creds := filepath.Join(dir, "pdisk.creds")
	for name, body := range map[string]string{
		path:  "[DEFAULT]\nnats_urls = nats://n1:4222\nnats_creds = " + creds + "\n[pdisk]\nlisten = 0.0.0.0:9000\n",
		creds: "creds",
	} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"STRATUSLAB_CONFIG": path, "STRATUSLAB_DATA_DIR": dir}
	b, err := Load("pdisk", []string{"--log-format", "json"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if b.ConfigFile != path || b.NATSCreds != creds || b.Listen != "0.0.0.0:9000" || b.DataDir != dir || b.LogFormat != "json" || len(b.NATSURLs) != 1 {
		t.Errorf("got %+v", b)
	}
	if b.Instance == "" {
		t.Error("no default instance")
	}
}
