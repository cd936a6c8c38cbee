package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// Store kinds.
const (
	StoreEmbedded  = "embedded"
	StoreCouchbase = "couchbase"
)

// Values of Bootstrap.TLS.
const (
	TLSAuto = "auto"
	TLSOn   = "on"
	TLSOff  = "off"
)

// DefaultConfigFile is read when neither --config nor STRATUSLAB_CONFIG names
// a file, if it exists.
const DefaultConfigFile = "/etc/stratuslab/stratuslab.cfg"

// Bootstrap holds the settings a service reads before it connects to
// anything. Everything else is live configuration in the store.
type Bootstrap struct {
	// DataDir holds local state: the embedded NATS server's JetStream
	// files, pdisk's volumes. Services use sub-directories named after
	// themselves.
	DataDir string
	// Listen is the CIMI gateway's HTTP address, HOST:PORT.
	Listen string
	// AdminListen is the address of /healthz, /readyz and /metrics.
	AdminListen string
	// TLS says whether the gateway serves HTTPS: TLSAuto (HTTPS unless
	// Listen is a loopback address), TLSOn, or TLSOff (refused on anything
	// but loopback).
	TLS string
	// TLSCert and TLSKey are the gateway's PEM certificate and key; when
	// empty, a self-signed pair is generated on first start and kept in
	// DataDir.
	TLSCert string
	TLSKey  string
	// ClientCAs is a PEM file or a directory of PEM files: the CAs client
	// certificates (and the issuers of RFC 3820 proxies) must chain to.
	// Empty disables certificate authentication.
	ClientCAs string
	// VOMSCAs is a PEM file or directory holding the certificates of the
	// VOMS servers whose attribute certificates are believed.
	VOMSCAs string
	// ImageCAs is a PEM file or a directory of PEM files: the CAs pdisk
	// trusts, besides the system's, when it downloads images over HTTPS,
	// for sites that host images behind a private CA or a self-signed
	// certificate. Empty: the system's CAs alone.
	ImageCAs string
	// NATSURLs are the NATS servers to connect to; empty means start an
	// embedded server.
	NATSURLs []string
	// NATSCreds is a NATS credentials (.creds) file; empty for none.
	NATSCreds string
	// NATSListen is the client address of the embedded NATS server; empty
	// means it accepts in-process connections only.
	NATSListen string
	// Store is StoreEmbedded or StoreCouchbase.
	Store string
	// CouchbaseURL is the Couchbase connection string, e.g.
	// "couchbases://cb.example.org"; required with StoreCouchbase.
	CouchbaseURL      string
	CouchbaseUser     string
	CouchbasePassword Secret
	CouchbaseBucket   string
	// Storage is pdisk's storage backend: StorageQCOW2 (files under
	// DataDir/pdisk), StorageLVM (volume group LVMGroup) or StorageRBD
	// (Ceph pool RBDPool, as RBDUser).
	Storage  string
	LVMGroup string
	// LVMThinPool is the thin pool in LVMGroup that holds the volumes, so
	// that snapshots cost nothing until written.
	LVMThinPool string
	RBDPool     string
	RBDUser     string
	// ISCSIPortal, when set (HOST:PORT), makes pdisk export standalone
	// volumes over iSCSI through the tgtd whose control port is
	// TGTControlPort, for VM hosts that do not see the storage.
	ISCSIPortal    string
	TGTControlPort string
	// LibvirtURI is the hypervisor the vmctl agent drives:
	// "test:///default" (no guests), "qemu:///embed?root=DIR" or
	// "qemu:///system".
	LibvirtURI string
	// VmctlRoles are the vmctl roles this process runs: "scheduler",
	// "agent" or both.
	VmctlRoles []string
	// CrashAt names points in the code where the process exits at once
	// (status 86) the first time it reaches one: crash tests use it to
	// kill a service at a chosen step. Never set in production.
	CrashAt []string
	// LogFormat is "json" or "text".
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error".
	LogLevel string
	// Instance tells replicas of a service apart in logs and traces.
	Instance string
	// ConfigFile is the INI file that was read; empty when none was.
	ConfigFile string
	// Args are the command-line arguments left after the flags.
	Args []string
}

// LogValue lists the settings for log/slog; the Couchbase password is
// redacted by its type.
func (b Bootstrap) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("data_dir", b.DataDir),
		slog.String("listen", b.Listen),
		slog.String("admin_listen", b.AdminListen),
		slog.String("tls", b.TLS),
		slog.String("tls_cert", b.TLSCert),
		slog.String("tls_key", b.TLSKey),
		slog.String("client_cas", b.ClientCAs),
		slog.String("voms_cas", b.VOMSCAs),
		slog.String("image_cas", b.ImageCAs),
		slog.String("nats_urls", strings.Join(b.NATSURLs, ",")),
		slog.String("nats_creds", b.NATSCreds),
		slog.String("nats_listen", b.NATSListen),
		slog.String("store", b.Store),
		slog.String("couchbase_url", b.CouchbaseURL),
		slog.String("couchbase_user", b.CouchbaseUser),
		slog.Any("couchbase_password", b.CouchbasePassword),
		slog.String("couchbase_bucket", b.CouchbaseBucket),
		slog.String("storage", b.Storage),
		slog.String("iscsi_portal", b.ISCSIPortal),
		slog.String("libvirt_uri", b.LibvirtURI),
		slog.String("log_format", b.LogFormat),
		slog.String("log_level", b.LogLevel),
		slog.String("instance", b.Instance),
		slog.String("config_file", b.ConfigFile),
	)
}

// AdminPort returns the default admin port of a service: fixed per service
// so that several services on one host do not collide, 0 (any free port)
// for a service not listed.
func AdminPort(service string) int {
	switch service {
	case "stratuslab": // the all-in-one binary
		return 9600
	case "cimi":
		return 9601
	case "authn":
		return 9602
	case "pdisk":
		return 9603
	case "vmctl":
		return 9604
	case "marketplace":
		return 9605
	case "registration":
		return 9606
	}
	return 0
}

// Load reads the bootstrap settings of service from args (without the
// program name), the environment read through getenv, and the config file.
// With -h or --help it prints the usage to standard error and returns an
// error wrapping flag.ErrHelp. All problems found are reported together,
// each naming where the value came from.
func Load(service string, args []string, getenv func(string) string) (Bootstrap, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = service
	}
	l := loader{
		service:     service,
		getenv:      getenv,
		output:      os.Stderr,
		defaultFile: DefaultConfigFile,
		root:        os.Geteuid() == 0,
		hostname:    host,
		readFile:    os.ReadFile,
	}
	return l.load(args)
}

// loader carries what Load takes from the process, so tests can vary it.
type loader struct {
	service     string
	getenv      func(string) string
	output      io.Writer // usage and flag errors
	defaultFile string
	root        bool
	hostname    string
	readFile    func(string) ([]byte, error)
}

// setting is one bootstrap key.
type setting struct {
	key    string // INI key; the environment variable is envName(key)
	flag   string
	arg    string // placeholder in the usage text
	usage  string
	def    func(l loader) string
	check  func(v string) error // problem with a value, for people
	set    func(b *Bootstrap, v string)
	secret bool
}

// settings lists every bootstrap key in usage order.
func settings() []setting {
	str := func(f func(*Bootstrap) *string) func(*Bootstrap, string) {
		return func(b *Bootstrap, v string) { *f(b) = v }
	}
	return []setting{
		{key: "data_dir", flag: "data-dir", arg: "DIR", usage: "directory for local state",
			def:   func(l loader) string { return l.defaultDataDir() },
			check: nonEmpty, set: func(b *Bootstrap, v string) { b.DataDir = filepath.Clean(v) }},
		{key: "listen", flag: "listen", arg: "HOST:PORT", usage: "CIMI gateway HTTP address",
			def:   func(loader) string { return "127.0.0.1:8080" },
			check: hostPort, set: str(func(b *Bootstrap) *string { return &b.Listen })},
		{key: "admin_listen", flag: "admin-listen", arg: "HOST:PORT", usage: "admin address for /healthz, /readyz, /metrics",
			def:   func(l loader) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(AdminPort(l.service))) },
			check: hostPort, set: str(func(b *Bootstrap) *string { return &b.AdminListen })},
		{key: "tls", flag: "tls", arg: "MODE", usage: `gateway HTTPS: "auto" (HTTPS unless listening on loopback), "on" or "off"`,
			def:   func(loader) string { return TLSAuto },
			check: oneOf(TLSAuto, TLSOn, TLSOff), set: str(func(b *Bootstrap) *string { return &b.TLS })},
		{key: "tls_cert", flag: "tls-cert", arg: "FILE", usage: "gateway certificate (PEM); self-signed in the data directory when empty",
			def:   func(loader) string { return "" },
			check: regularFile, set: str(func(b *Bootstrap) *string { return &b.TLSCert })},
		{key: "tls_key", flag: "tls-key", arg: "FILE", usage: "gateway private key (PEM)",
			def:   func(loader) string { return "" },
			check: regularFile, set: str(func(b *Bootstrap) *string { return &b.TLSKey })},
		{key: "client_cas", flag: "client-cas", arg: "PATH", usage: "CA certificates (PEM file or directory) for client certificate logins",
			def:   func(loader) string { return "" },
			check: anything, set: str(func(b *Bootstrap) *string { return &b.ClientCAs })},
		{key: "voms_cas", flag: "voms-cas", arg: "PATH", usage: "VOMS server certificates (PEM file or directory) for VOMS proxy logins",
			def:   func(loader) string { return "" },
			check: anything, set: str(func(b *Bootstrap) *string { return &b.VOMSCAs })},
		{key: "image_cas", flag: "image-cas", arg: "PATH", usage: "CA certificates (PEM file or directory) pdisk trusts, besides the system's, for image downloads",
			def:   func(loader) string { return "" },
			check: anything, set: str(func(b *Bootstrap) *string { return &b.ImageCAs })},
		{key: "nats_urls", flag: "nats-url", arg: "URL,...", usage: "NATS servers to connect to; empty starts an embedded server",
			def:   func(loader) string { return "" },
			check: natsURLs, set: func(b *Bootstrap, v string) { b.NATSURLs = splitList(v) }},
		{key: "nats_creds", flag: "nats-creds", arg: "FILE", usage: "NATS credentials file",
			def:   func(loader) string { return "" },
			check: regularFile, set: str(func(b *Bootstrap) *string { return &b.NATSCreds })},
		{key: "nats_listen", flag: "nats-listen", arg: "HOST:PORT", usage: `embedded NATS client address; "none" for in-process only`,
			def:   func(loader) string { return "127.0.0.1:4222" },
			check: natsListen, set: func(b *Bootstrap, v string) {
				if v == "none" {
					v = ""
				}
				b.NATSListen = v
			}},
		{key: "store", flag: "store", arg: "KIND", usage: `document store: "embedded" or "couchbase"`,
			def:   func(loader) string { return StoreEmbedded },
			check: oneOf(StoreEmbedded, StoreCouchbase), set: str(func(b *Bootstrap) *string { return &b.Store })},
		{key: "couchbase_url", flag: "couchbase-url", arg: "URL", usage: "Couchbase connection string",
			def:   func(loader) string { return "" },
			check: couchbaseURL, set: str(func(b *Bootstrap) *string { return &b.CouchbaseURL })},
		{key: "couchbase_user", flag: "couchbase-user", arg: "USER", usage: "Couchbase user",
			def:   func(loader) string { return "" },
			check: anything, set: str(func(b *Bootstrap) *string { return &b.CouchbaseUser })},
		{key: "couchbase_password", flag: "couchbase-password", arg: "PASSWORD", secret: true,
			usage: "Couchbase password (prefer the environment or the file: flags show in ps)",
			def:   func(loader) string { return "" },
			check: anything, set: func(b *Bootstrap, v string) { b.CouchbasePassword = Secret(v) }},
		{key: "couchbase_bucket", flag: "couchbase-bucket", arg: "BUCKET", usage: "Couchbase bucket",
			def:   func(loader) string { return "stratuslab" },
			check: nonEmpty, set: str(func(b *Bootstrap) *string { return &b.CouchbaseBucket })},
		{key: "storage", flag: "storage", arg: "KIND", usage: `pdisk storage: "qcow2" (files in the data directory), "lvm" or "rbd"`,
			def:   func(loader) string { return StorageQCOW2 },
			check: oneOf(StorageQCOW2, StorageLVM, StorageRBD), set: str(func(b *Bootstrap) *string { return &b.Storage })},
		{key: "lvm_group", flag: "lvm-group", arg: "VG", usage: "LVM volume group of the lvm storage",
			def:   func(loader) string { return "" },
			check: anything, set: str(func(b *Bootstrap) *string { return &b.LVMGroup })},
		{key: "lvm_thin_pool", flag: "lvm-thin-pool", arg: "LV", usage: "thin pool (in the volume group) of the lvm storage",
			def:   func(loader) string { return "" },
			check: anything, set: str(func(b *Bootstrap) *string { return &b.LVMThinPool })},
		{key: "rbd_pool", flag: "rbd-pool", arg: "POOL", usage: "Ceph pool of the rbd storage",
			def:   func(loader) string { return "" },
			check: anything, set: str(func(b *Bootstrap) *string { return &b.RBDPool })},
		{key: "rbd_user", flag: "rbd-user", arg: "USER", usage: "Ceph user of the rbd storage",
			def:   func(loader) string { return "" },
			check: anything, set: str(func(b *Bootstrap) *string { return &b.RBDUser })},
		{key: "iscsi_portal", flag: "iscsi-portal", arg: "HOST:PORT", usage: "export volumes over iSCSI (tgt) at this portal; empty: no export",
			def: func(loader) string { return "" },
			check: func(v string) error {
				if v == "" {
					return nil
				}
				return hostPort(v)
			}, set: str(func(b *Bootstrap) *string { return &b.ISCSIPortal })},
		{key: "tgt_control_port", flag: "tgt-control-port", arg: "N", usage: "control port of the tgtd that exports volumes (tgtadm -C)",
			def: func(loader) string { return "0" },
			check: func(v string) error {
				if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 65535 {
					return fmt.Errorf("%q is not a tgtd control port number", v)
				}
				return nil
			}, set: str(func(b *Bootstrap) *string { return &b.TGTControlPort })},
		{key: "libvirt_uri", flag: "libvirt-uri", arg: "URI", usage: `hypervisor of the vmctl agent: "test:///default", "qemu:///embed?root=DIR" or "qemu:///system"`,
			def:   func(loader) string { return "test:///default" },
			check: nonEmpty, set: str(func(b *Bootstrap) *string { return &b.LibvirtURI })},
		{key: "vmctl_roles", flag: "vmctl-roles", arg: "ROLE,...", usage: `vmctl roles to run: "scheduler", "agent" or both`,
			def: func(loader) string { return "scheduler,agent" },
			check: func(v string) error {
				for _, r := range splitList(v) {
					if r != "scheduler" && r != "agent" {
						return fmt.Errorf("%q is not a vmctl role (scheduler, agent)", r)
					}
				}
				return nil
			}, set: func(b *Bootstrap, v string) { b.VmctlRoles = splitList(v) }},
		{key: "crash_at", flag: "crash-at", arg: "POINT,...", usage: "testing only: exit abruptly (status 86) at the first of these code points reached",
			def: func(loader) string { return "" }, check: func(string) error { return nil },
			set: func(b *Bootstrap, v string) { b.CrashAt = splitList(v) }},
		{key: "log_format", flag: "log-format", arg: "FORMAT", usage: `"text" or "json"`,
			def:   func(loader) string { return "text" },
			check: oneOf("text", "json"), set: str(func(b *Bootstrap) *string { return &b.LogFormat })},
		{key: "log_level", flag: "log-level", arg: "LEVEL", usage: `"debug", "info", "warn" or "error"`,
			def:   func(loader) string { return "info" },
			check: logLevel, set: str(func(b *Bootstrap) *string { return &b.LogLevel })},
		{key: "instance", flag: "instance", arg: "NAME", usage: "name of this replica in logs and traces",
			def:   func(l loader) string { return l.hostname },
			check: nonEmpty, set: str(func(b *Bootstrap) *string { return &b.Instance })},
	}
}

// Storage backends of pdisk.
const (
	StorageQCOW2 = "qcow2"
	StorageLVM   = "lvm"
	StorageRBD   = "rbd"
)

// envName is the environment variable of a key, e.g. STRATUSLAB_DATA_DIR.
func envName(key string) string { return "STRATUSLAB_" + strings.ToUpper(key) }

// configEnv names the config file in the environment.
const configEnv = "STRATUSLAB_CONFIG"

func (l loader) defaultDataDir() string {
	if l.root {
		return "/var/lib/stratuslab"
	}
	if home := l.getenv("HOME"); home != "" {
		return filepath.Join(home, ".stratuslab", "data")
	}
	return ""
}

// source says where a value came from, for error messages.
type source struct {
	kind    string // "default", "config", "environment" or "flag"
	name    string // key, variable or flag name
	file    string
	line    int
	section string
}

func (s source) String() string {
	switch s.kind {
	case "config":
		return fmt.Sprintf("config %s:%d: [%s] %s", s.file, s.line, s.section, s.name)
	case "environment":
		return "environment " + s.name
	case "flag":
		return "flag --" + s.name
	}
	return "default " + s.name
}

// value is a raw setting and its origin.
type value struct {
	v   string
	src source
}

func (l loader) load(args []string) (Bootstrap, error) {
	if l.service == "" || strings.ContainsAny(l.service, "[]\n") {
		return Bootstrap{}, fmt.Errorf("config: invalid service name %q", l.service)
	}
	all := settings()
	fset := flag.NewFlagSet(l.service, flag.ContinueOnError)
	fset.SetOutput(l.output)
	fset.Usage = func() { l.usage(all) }
	configFlag := fset.String("config", "", "")
	for _, s := range all {
		fset.String(s.flag, "", "")
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Bootstrap{}, err
		}
		return Bootstrap{}, fmt.Errorf("%s: command line: %w (see -h)", l.service, err)
	}
	flagsSet := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { flagsSet[f.Name] = true })

	// The config file: the flag, then the environment, then the default
	// path if it exists. An explicit empty --config reads no file.
	path, explicit := *configFlag, flagsSet["config"]
	if !explicit {
		if path = l.getenv(configEnv); path != "" {
			explicit = true
		} else {
			path = l.defaultFile
		}
	}
	var data []byte
	if path != "" {
		var err error
		if data, err = l.readFile(path); err != nil {
			if !explicit && errors.Is(err, fs.ErrNotExist) {
				path = ""
			} else {
				return Bootstrap{}, fmt.Errorf("config %s: %w", path, err)
			}
		}
	}
	return l.resolve(all, path, data, fset, flagsSet)
}

// resolve layers defaults, the file's [DEFAULT] and service sections, the
// environment and the flags, then validates the result.
func (l loader) resolve(all []setting, path string, data []byte, fset *flag.FlagSet, flagsSet map[string]bool) (Bootstrap, error) {
	vals := map[string]value{}
	known := map[string]bool{}
	for _, s := range all {
		known[s.key] = true
		vals[s.key] = value{s.def(l), source{kind: "default", name: s.key}}
	}
	var problems []error
	if path != "" {
		f, err := parseINI(data)
		if err != nil {
			var ie *iniError
			if errors.As(err, &ie) {
				return Bootstrap{}, fmt.Errorf("config %s:%d: %s", path, ie.line, ie.msg)
			}
			return Bootstrap{}, fmt.Errorf("config %s: %w", path, err)
		}
		for _, name := range []string{"DEFAULT", l.service} {
			sec := f.section(name)
			if sec == nil {
				continue
			}
			for _, key := range sec.keysByLine() {
				e := sec.keys[key]
				src := source{kind: "config", name: key, file: path, line: e.line, section: sec.name}
				if !known[key] {
					problems = append(problems, fmt.Errorf("%s: unknown key (known keys: %s)", src, knownKeys(all)))
					continue
				}
				vals[key] = value{e.value, src}
			}
		}
	}
	for _, s := range all {
		if v := l.getenv(envName(s.key)); v != "" {
			vals[s.key] = value{v, source{kind: "environment", name: envName(s.key)}}
		}
		if flagsSet[s.flag] {
			vals[s.key] = value{fset.Lookup(s.flag).Value.String(), source{kind: "flag", name: s.flag}}
		}
	}

	b := Bootstrap{ConfigFile: path}
	if len(fset.Args()) > 0 {
		b.Args = fset.Args()
	}
	for _, s := range all {
		v := vals[s.key]
		// Stray spaces around environment values and flags are a common
		// slip; no setting has meaningful ones, nor control characters.
		v.v = strings.TrimSpace(v.v)
		if !utf8.ValidString(v.v) {
			problems = append(problems, l.problem(s, v, "must be valid UTF-8 text"))
			continue
		}
		if strings.ContainsFunc(v.v, unicode.IsControl) {
			problems = append(problems, l.problem(s, v, "must not contain control characters"))
			continue
		}
		if err := s.check(v.v); err != nil {
			problems = append(problems, l.problem(s, v, err.Error()))
			continue
		}
		s.set(&b, v.v)
	}
	if b.Store == StoreCouchbase {
		for _, kv := range [][2]string{{"couchbase_url", b.CouchbaseURL}, {"couchbase_user", b.CouchbaseUser}, {"couchbase_password", string(b.CouchbasePassword)}} {
			if k := kv[0]; kv[1] == "" {
				problems = append(problems, fmt.Errorf("%s: store %q needs %s: give --%s, %s or %s in the config file",
					vals["store"].src, StoreCouchbase, k, strings.ReplaceAll(k, "_", "-"), envName(k), k))
			}
		}
	}
	if len(problems) > 0 {
		return Bootstrap{}, errors.Join(problems...)
	}
	return b, nil
}

// problem describes a bad value, telling how to set it when the bad value
// is a default.
func (l loader) problem(s setting, v value, msg string) error {
	if v.src.kind == "default" {
		return fmt.Errorf("%s: %s: give --%s, %s or %s in the config file", v.src, msg, s.flag, envName(s.key), s.key)
	}
	return fmt.Errorf("%s: %s", v.src, msg)
}

func knownKeys(all []setting) string {
	keys := make([]string, len(all))
	for i, s := range all {
		keys[i] = s.key
	}
	return strings.Join(keys, ", ")
}

// usage prints the help of -h.
func (l loader) usage(all []setting) {
	w := l.output
	fmt.Fprintf(w, "Usage: %s [flags] [arguments]\n\n", l.service)
	fmt.Fprintf(w, "Bootstrap settings, highest precedence first: flags, STRATUSLAB_* environment\n")
	fmt.Fprintf(w, "variables, the config file ([DEFAULT] then [%s]), defaults.\n\n", l.service)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  --config FILE\tconfig file (%s; default %s if it exists)\n", configEnv, l.defaultFile)
	for _, s := range all {
		def := s.def(l)
		if s.secret {
			def = Secret(def).String()
		}
		if def == "" {
			def = "none"
		} else {
			def = strconv.Quote(def)
		}
		fmt.Fprintf(tw, "  --%s %s\t%s (%s, key %s; default %s)\n", s.flag, s.arg, s.usage, envName(s.key), s.key, def)
	}
	tw.Flush()
}

// Checks of raw values; each error text completes "<source>: ".

func anything(string) error { return nil }

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		q := make([]string, len(allowed))
		for i, a := range allowed {
			q[i] = strconv.Quote(a)
		}
		return fmt.Errorf("must be %s, got %q", strings.Join(q, " or "), v)
	}
}

func hostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("must be HOST:PORT (e.g. 127.0.0.1:8080), got %q", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be a number from 0 to 65535, got %q", port)
	}
	return nil
}

func natsListen(v string) error {
	if v == "" || v == "none" {
		return nil
	}
	return hostPort(v)
}

func logLevel(v string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return fmt.Errorf(`must be "debug", "info", "warn" or "error", got %q`, v)
	}
	return nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func natsURLs(v string) error {
	for _, item := range splitList(v) {
		raw := item
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%q is not a NATS URL such as nats://host:4222", item)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%q: scheme must be nats, tls, ws or wss", item)
		}
	}
	return nil
}

// couchbaseURL checks the shape of a connection string; its host list
// ("couchbase://h1:11210,h2:11210") is not a URL host, so net/url cannot.
func couchbaseURL(v string) error {
	if v == "" {
		return nil
	}
	scheme, rest, ok := strings.Cut(v, "://")
	switch {
	case !ok:
		return fmt.Errorf("%q is not a Couchbase connection string such as couchbases://cb.example.org", v)
	case scheme != "couchbase" && scheme != "couchbases" && scheme != "http" && scheme != "https":
		return fmt.Errorf("%q: scheme must be couchbase or couchbases", v)
	}
	hosts, _, _ := strings.Cut(rest, "?")
	hosts, _, _ = strings.Cut(hosts, "/")
	for _, h := range strings.FieldsFunc(hosts, func(r rune) bool { return r == ',' || r == ';' }) {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, " \t@") {
			return fmt.Errorf("%q: bad host %q", v, h)
		}
	}
	if strings.Trim(hosts, ",; ") == "" {
		return fmt.Errorf("%q names no host", v)
	}
	return nil
}

func regularFile(v string) error {
	if v == "" {
		return nil
	}
	fi, err := os.Stat(v)
	if err != nil {
		return fmt.Errorf("cannot read %s: %v", v, errors.Unwrap(err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", v)
	}
	return nil
}
