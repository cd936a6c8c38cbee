package ldaptest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Paths of the Debian slapd installation.
const (
	Slapd     = "/usr/sbin/slapd"
	SchemaDir = "/etc/ldap/schema"
	ModuleDir = "/usr/lib/ldap"
)

// The directory's layout and administrator.
const (
	Suffix    = "o=cloud"
	RootDN    = "cn=admin,o=cloud"
	UsersDN   = "ou=users,o=cloud"
	GroupsDN  = "ou=groups,o=cloud"
	rootPW    = "ldaptest-root"
	readyWait = 20 * time.Second
)

// Server is a running slapd.
type Server struct {
	Host string
	Port int
}

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// User is an inetOrgPerson entry under ou=users.
type User struct {
	UID, Password, CN, SN string
}

// DN returns the user's entry name.
func (u User) DN() string { return "uid=" + ldap.EscapeDN(u.UID) + "," + UsersDN }

// Group is a groupOfUniqueNames under ou=groups whose members are users
// by uid.
type Group struct {
	CN      string
	Members []string
}

const config = `include {{schema}}/core.schema
include {{schema}}/cosine.schema
include {{schema}}/inetorgperson.schema
include {{schema}}/nis.schema
pidfile {{dir}}/slapd.pid
argsfile {{dir}}/slapd.args
modulepath {{modules}}
moduleload back_mdb
database mdb
maxsize 16777216
suffix "` + Suffix + `"
rootdn "` + RootDN + `"
rootpw ` + rootPW + `
directory {{dir}}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
`

// Start runs slapd for the test t, or skips t when slapd is not installed.
// The server is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(Slapd); err != nil {
		t.Skipf("LDAP tests need OpenLDAP's %s (Debian package slapd): %v", Slapd, err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{{schema}}", SchemaDir, "{{dir}}", dir, "{{modules}}", ModuleDir).Replace(config)
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := &Server{Host: "127.0.0.1", Port: port}
	var out strings.Builder
	cmd := exec.Command(Slapd, "-f", confPath, "-h", "ldap://"+s.Addr()+"/", "-d", "0")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("ldaptest: start slapd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(readyWait)
	for {
		conn, err := s.dialRoot()
		if err == nil {
			conn.Close()
			break
		}
		select {
		case werr := <-exited:
			t.Fatalf("ldaptest: slapd exited (%v) before serving: %s", werr, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ldaptest: slapd not serving on %s after %v: %v", s.Addr(), readyWait, err)
		}
	}
	s.mustAdd(t, Suffix, map[string][]string{"objectClass": {"organization"}, "o": {"cloud"}})
	s.mustAdd(t, UsersDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"users"}})
	s.mustAdd(t, GroupsDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"groups"}})
	return s
}

// freePort returns a loopback port nobody listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) dialRoot() (*ldap.Conn, error) {
	conn, err := ldap.DialURL("ldap://"+s.Addr(), ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return nil, err
	}
	if err := conn.Bind(RootDN, rootPW); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (s *Server) mustAdd(t testing.TB, dn string, attrs map[string][]string) {
	t.Helper()
	if err := s.add(dn, attrs); err != nil {
		t.Fatalf("ldaptest: add %s: %v", dn, err)
	}
}

func (s *Server) add(dn string, attrs map[string][]string) error {
	conn, err := s.dialRoot()
	if err != nil {
		return err
	}
	defer conn.Close()
	req := ldap.NewAddRequest(dn, nil)
	for name, values := range attrs {
		req.Attribute(name, values)
	}
	return conn.Add(req)
}

// AddUsers adds inetOrgPerson entries under ou=users.
func (s *Server) AddUsers(t testing.TB, users ...User) {
	t.Helper()
	for _, u := range users {
		attrs := map[string][]string{
			"objectClass": {"inetOrgPerson"},
			"uid":         {u.UID},
			"cn":          {or(u.CN, u.UID)},
			"sn":          {or(u.SN, u.UID)},
		}
		if u.Password != "" {
			attrs["userPassword"] = []string{u.Password}
		}
		s.mustAdd(t, u.DN(), attrs)
	}
}

// AddGroups adds groupOfUniqueNames entries under ou=groups.
func (s *Server) AddGroups(t testing.TB, groups ...Group) {
	t.Helper()
	for _, g := range groups {
		members := make([]string, len(g.Members))
		for i, uid := range g.Members {
			members[i] = User{UID: uid}.DN()
		}
		s.mustAdd(t, fmt.Sprintf("cn=%s,%s", ldap.EscapeDN(g.CN), GroupsDN), map[string][]string{
			"objectClass":  {"groupOfUniqueNames"},
			"cn":           {g.CN},
			"uniqueMember": members,
		})
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
