package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/internal/ini"
)

const multi = `[default]
selected_section = sl-cloud
endpoint_timeout = 5
endpoint = default.example.org
username = defuser

[sl-cloud]
endpoint = https://cloud.lal.stratuslab.eu
password = "sl pass%%"

[fav-cloud]
endpoint = favorit-cloud.tld
username = clouduser
user_public_key_file = /home/clouduser/.ssh/id_rsa-favcloud.pub
`

func writeCfg(t *testing.T, home, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(home, ".stratuslab"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(Path(home), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	writeCfg(t, home, multi)
	for _, tc := range []struct {
		name    string
		env     map[string]string
		flags   map[string]string
		section string
		key     string
		want    string
		source  string
	}{
		{"selected section wins over default", nil, nil, "", Endpoint, "https://cloud.lal.stratuslab.eu", "[sl-cloud]"},
		{"default fills what the section lacks", nil, nil, "", Username, "defuser", "[default]"},
		{"quoted value and doubled percent", nil, nil, "", Password, "sl pass%", "[sl-cloud]"},
		{"-S chooses another section", nil, nil, "fav-cloud", Username, "clouduser", "[fav-cloud]"},
		{"-S section keeps [default] for the rest", nil, nil, "fav-cloud", EndpointTimeout, "5", "[default]"},
		{"-S default means [default] only", nil, nil, "default", Endpoint, "default.example.org", "[default]"},
		{"env chooses the section", map[string]string{SectionEnv: "fav-cloud"}, nil, "", Endpoint, "favorit-cloud.tld", "[fav-cloud]"},
		{"-S beats the env section", map[string]string{SectionEnv: "fav-cloud"}, nil, "sl-cloud", Endpoint, "https://cloud.lal.stratuslab.eu", "[sl-cloud]"},
		{"env beats the file", map[string]string{"STRATUSLAB_ENDPOINT": "env.example.org"}, nil, "", Endpoint, "env.example.org", "STRATUSLAB_ENDPOINT"},
		{"flag beats env", map[string]string{"STRATUSLAB_ENDPOINT": "env.example.org"}, map[string]string{Endpoint: "flag.example.org"}, "", Endpoint, "flag.example.org", "--endpoint"},
		{"flag beats file", nil, map[string]string{Username: "bob"}, "", Username, "bob", "--username"},
		{"empty flag still wins", nil, map[string]string{Username: ""}, "", Username, "", "--username"},
		{"derived env name", map[string]string{"STRATUSLAB_PDISK_ENDPOINT": "pd.example.org"}, nil, "", PdiskEndpoint, "pd.example.org", "STRATUSLAB_PDISK_ENDPOINT"},
		{"pdisk follows the endpoint", nil, nil, "", PdiskEndpoint, "https://cloud.lal.stratuslab.eu", "the default"},
		{"pdisk follows an env endpoint", map[string]string{"STRATUSLAB_ENDPOINT": "env.example.org"}, nil, "", PdiskEndpoint, "env.example.org", "the default"},
		{"STRATUSLAB_KEY exception", map[string]string{"STRATUSLAB_KEY": "/k.pub"}, nil, "", UserPublicKeyFile, "/k.pub", "STRATUSLAB_KEY"},
		{"key default", nil, nil, "", UserPublicKeyFile, filepath.Join(home, ".ssh", "id_rsa.pub"), "the default"},
		{"section key file", nil, nil, "fav-cloud", UserPublicKeyFile, "/home/clouduser/.ssh/id_rsa-favcloud.pub", "[fav-cloud]"},
		{"marketplace default: derived from the endpoint", nil, nil, "", MarketplaceEndpoint, "", "the default"},
		{"no pem certificate unless it exists", nil, nil, "", PemCertificate, "", "the default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := Resolve(Inputs{Home: home, Getenv: func(k string) string { return tc.env[k] }, Flags: tc.flags, Section: tc.section})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Get(tc.key); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.key, got, tc.want)
			}
			if !strings.Contains(s.Source(tc.key), tc.source) {
				t.Errorf("source of %s = %q, want %q", tc.key, s.Source(tc.key), tc.source)
			}
		})
	}
}

func TestResolveFiles(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	globus := filepath.Join(home, ".globus")
	if err := os.MkdirAll(globus, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"usercert.pem", "userkey.pem"} {
		if err := os.WriteFile(filepath.Join(globus, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Resolve(Inputs{Home: home})
	if err != nil || s.Found || s.Get(PemCertificate) != filepath.Join(globus, "usercert.pem") || s.Get(PemKey) != filepath.Join(globus, "userkey.pem") {
		t.Fatalf("no file, a grid certificate: %+v, %v", s, err)
	}
	if s.Where() != Path(home)+" [default]" {
		t.Errorf("Where = %s", s.Where())
	}

	other := filepath.Join(t.TempDir(), "other.cfg")
	if err := os.WriteFile(other, []byte("[default]\nendpoint = other.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Resolve(Inputs{Home: home, Getenv: func(k string) string { return map[string]string{FileEnv: other}[k] }})
	if err != nil || !s.Found || s.Get(Endpoint) != "other.org" || s.Path != other {
		t.Fatalf("STRATUSLAB_USER_CONFIG: %+v, %v", s, err)
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		file    string
		section string
		want    string
	}{
		{"missing -S section", multi, "nowhere", "section [nowhere] chosen by -S/--user-config-section is not in"},
		{"missing selected section", "[default]\nselected_section = gone\n", "", "selected_section in [default]"},
		{"no file for -S", "", "x", "no such file"},
		{"syntax", "[default]\nendpoint\n", "", "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			if tc.file != "" {
				writeCfg(t, home, tc.file)
			}
			_, err := Resolve(Inputs{Home: home, Section: tc.section})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		insecure string
		want     bool
		bad      bool
	}{
		{"", false, false}, {"true", true, false}, {"Yes", true, false}, {"1", true, false},
		{"off", false, false}, {"maybe", false, true},
	} {
		s := &Settings{values: map[string]string{Insecure: tc.insecure}, sources: map[string]string{}}
		got, err := s.Bool(Insecure)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("Bool(%q) = %v, %v", tc.insecure, got, err)
		}
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"5", 5 * time.Second, false}, {"0.5", 500 * time.Millisecond, false}, {"2m", 2 * time.Minute, false},
		{"soon", 0, true}, {"-1", 0, true},
	} {
		s := &Settings{values: map[string]string{EndpointTimeout: tc.in}, sources: map[string]string{}}
		got, err := s.Timeout()
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("Timeout(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestKeysAndReference(t *testing.T) {
	t.Parallel()
	want := map[string][2]string{
		PdiskEndpoint:     {"pdisk-endpoint", "STRATUSLAB_PDISK_ENDPOINT"},
		PemCertificate:    {"pem-cert", "STRATUSLAB_PEM_CERTIFICATE"},
		P12Certificate:    {"p12-cert", "STRATUSLAB_P12_CERTIFICATE"},
		UserPublicKeyFile: {"key", "STRATUSLAB_KEY"},
		PemKey:            {"pem-key", "STRATUSLAB_PEM_KEY"},
		Insecure:          {"insecure", "STRATUSLAB_INSECURE"},
	}
	for name, w := range want {
		k, ok := Lookup(name)
		if !ok || k.Flag != w[0] || k.Env != w[1] {
			t.Errorf("%s: %+v", name, k)
		}
	}
	ref := Reference()
	f, err := ini.Parse(strings.NewReader(ref))
	if err != nil {
		t.Fatalf("the reference file does not parse: %v", err)
	}
	if got := f.Sections(); len(got) != 1 || got[0] != "default" || len(f.Keys("default")) != 0 {
		t.Errorf("the reference file sets values: %v %v", got, f.Keys("default"))
	}
	for _, k := range Keys() {
		if !strings.Contains(ref, "\n#"+k.Name+" = ") || !strings.Contains(ref, "--"+k.Flag) || !strings.Contains(ref, k.Env) {
			t.Errorf("the reference file does not explain %s", k.Name)
		}
	}
}
