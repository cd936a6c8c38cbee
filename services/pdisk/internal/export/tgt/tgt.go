package tgt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/export"
)

// DefaultIQNPrefix is the original StratusLab's: targets are named
// iqn.2011-01.eu.stratuslab:<uuid>.
const DefaultIQNPrefix = "iqn.2011-01.eu.stratuslab:"

// DefaultPort is the iSCSI port (RFC 7143), used when Config.Portal has none.
const DefaultPort = "3260"

// lun is the logical unit that holds the volume; LUN 0 is tgt's controller.
const lun = 1

// tidSpace bounds the target ids Export hands out. tgt accepts larger ids,
// but ids up to 0xffff keep the SCSI identifiers it derives from them
// ("IET     <tid><lun>" in hex) at the width initiators usually see.
const tidSpace = 0xffff

// maxAttempts bounds how often Export retries after another exporter took
// the target id it chose; each lost race means another export succeeded.
const maxAttempts = 64

// maxIQN is the longest iSCSI name RFC 7143 allows, in bytes.
const maxIQN = 223

// Config says which tgtd to drive and what to write into transport URLs.
type Config struct {
	// ControlPort is tgtd's management port, its -C option, which tgtadm
	// needs to find the daemon; 0 is tgtd's default.
	ControlPort int
	// Portal is the host:port at which VM hosts reach tgtd's iSCSI portal,
	// written into every turl. The port defaults to 3260. tgtd listens
	// where its own configuration says: this is only what VM hosts are told.
	Portal string
	// IQNPrefix is prepended to volume uuids to name targets;
	// DefaultIQNPrefix when empty. Targets whose names do not start with it
	// are someone else's: List ignores them and Export never touches them.
	IQNPrefix string
	// Initiators are the initiators allowed to log in to every target: "ALL",
	// IP addresses or networks ("192.168.1.0/24"), or initiator names
	// ("iqn.1993-08.org.debian:01:..."). ["ALL"] when empty.
	Initiators []string
}

// Exporter serves volumes as iSCSI targets of a running tgtd. It holds no
// state beyond its configuration, so any number of Exporters, in one
// process or in several, may share a tgtd.
type Exporter struct {
	tgtadm  string
	qemuImg string
	control string
	portal  string
	prefix  string
	acl     []string
	// space is tidSpace except in tests, which shrink it to make exports
	// collide.
	space int
}

var _ export.Exporter = (*Exporter)(nil)

// New checks cfg and returns an exporter using the tgtadm and qemu-img found
// on PATH. It does not contact tgtd: a daemon that is down makes calls fail
// with errs.Unavailable until it is back.
func New(cfg Config) (*Exporter, error) {
	if cfg.ControlPort < 0 {
		return nil, fmt.Errorf("tgt control port %d is negative", cfg.ControlPort)
	}
	portal, err := checkPortal(cfg.Portal)
	if err != nil {
		return nil, err
	}
	prefix := cfg.IQNPrefix
	if prefix == "" {
		prefix = DefaultIQNPrefix
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	acl := slices.Clone(cfg.Initiators)
	if len(acl) == 0 {
		acl = []string{"ALL"}
	}
	for _, a := range acl {
		if a == "" || strings.ContainsFunc(a, isSpaceOrControl) {
			return nil, fmt.Errorf("tgt initiator %q must be ALL, an address, a network or an initiator name, without spaces", a)
		}
	}
	slices.Sort(acl)
	acl = slices.Compact(acl)
	tgtadm, err := exec.LookPath("tgtadm")
	if err != nil {
		return nil, fmt.Errorf("the iSCSI exporter needs tgtadm (Debian package tgt): %w", err)
	}
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return nil, fmt.Errorf("the iSCSI exporter needs qemu-img (Debian package qemu-utils) to prepare qcow2 volumes: %w", err)
	}
	return &Exporter{
		tgtadm:  tgtadm,
		qemuImg: qemuImg,
		control: strconv.Itoa(cfg.ControlPort),
		portal:  portal,
		prefix:  prefix,
		acl:     acl,
		space:   tidSpace,
	}, nil
}

func checkPortal(p string) (string, error) {
	if p == "" {
		return "", errors.New("tgt portal is missing: give the host:port at which VM hosts reach tgtd")
	}
	host, port, err := net.SplitHostPort(p)
	if err != nil {
		// No port: the whole string is the host (brackets kept off IPv6).
		host, port = strings.TrimSuffix(strings.TrimPrefix(p, "["), "]"), DefaultPort
	}
	n, err := strconv.Atoi(port)
	if host == "" || strings.ContainsAny(host, "/[]@?#") || strings.ContainsFunc(host, isSpaceOrControl) || err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("tgt portal %q is not host:port", p)
	}
	return net.JoinHostPort(host, port), nil
}

func checkPrefix(p string) error {
	if len(p)+36 > maxIQN {
		return fmt.Errorf("tgt IQN prefix %q is too long: target names may have %d bytes", p, maxIQN)
	}
	for _, c := range p {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '-' && c != ':' {
			return fmt.Errorf("tgt IQN prefix %q may only hold lowercase letters, digits, '.', '-' and ':'", p)
		}
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// Name returns "iscsi".
func (e *Exporter) Name() string { return "iscsi" }

// TargetName returns the iSCSI name of volume uuid's target.
func (e *Exporter) TargetName(uuid string) string { return e.prefix + uuid }

// URL returns volume uuid's transport URL: iscsi://<portal>/<target>/1.
func (e *Exporter) URL(uuid string) string {
	return "iscsi://" + e.portal + "/" + e.TargetName(uuid) + "/" + strconv.Itoa(lun)
}

// Export makes volume uuid a target of tgtd, or completes the target a
// crashed or concurrent Export left, and returns its URL. A location with
// only a URL is a network backend's volume, already reachable, and comes
// back as it is. The target is open to initiators only once its logical
// unit is in place; when Export made the target and then fails, it removes
// it again.
func (e *Exporter) Export(ctx context.Context, uuid string, loc backend.Location) (string, error) {
	if err := backend.CheckID(uuid); err != nil {
		return "", err
	}
	if loc.Path == "" {
		if loc.URL != "" {
			return loc.URL, nil
		}
		return "", errs.Errorf(errs.Internal, "volume %s cannot be exported: its backend gave neither a path nor a URL", uuid)
	}
	// tgtd resolves relative paths from its own directory, not ours.
	path, err := filepath.Abs(loc.Path)
	if err != nil {
		return "", errs.Wrap(errs.Internal, err, exporting(uuid))
	}
	if err := e.prepare(ctx, uuid, loc.Format, path); err != nil {
		return "", err
	}
	name := e.TargetName(uuid)
	for range maxAttempts {
		targets, err := e.show(ctx)
		if err != nil {
			return "", err
		}
		if i := slices.IndexFunc(targets, func(t target) bool { return t.name == name }); i >= 0 {
			if err := e.complete(ctx, uuid, targets[i], path); err != nil {
				return "", err
			}
			return e.URL(uuid), nil
		}
		tid, ok := e.freeTID(uuid, targets)
		if !ok {
			return "", errs.Errorf(errs.Unavailable, "volume %s cannot be exported: the iSCSI target daemon has no free target id left", uuid)
		}
		_, err = e.adm(ctx, "--mode", "target", "--op", "new", "--tid", strconv.Itoa(tid), "--targetname", name)
		if alreadyExists(err) {
			// Another exporter took this tid, or is exporting this very
			// volume: look again.
			continue
		}
		if err != nil {
			return "", e.failed(exporting(uuid), err)
		}
		if err := e.complete(ctx, uuid, target{tid: tid, name: name}, path); err != nil {
			// Take back the target made above: half a target is worse than
			// none, and the caller will retry from scratch.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_ = e.deleteTarget(rctx, tid)
			cancel()
			return "", err
		}
		return e.URL(uuid), nil
	}
	return "", errs.Errorf(errs.Unavailable, "volume %s cannot be exported: other exports kept taking the target ids chosen for it; retry", uuid)
}

// prepare checks that the volume's file exists before any target is made,
// and gives a qcow2 file the room to grow that a fixed-size logical unit
// cannot.
func (e *Exporter) prepare(ctx context.Context, uuid, format, path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return errs.Wrap(errs.NotFound, err, fmt.Sprintf("volume %s cannot be exported: its storage is missing", uuid))
	}
	if err != nil {
		return errs.Wrap(errs.Internal, err, fmt.Sprintf("volume %s cannot be exported: its storage cannot be read", uuid))
	}
	if format != "qcow2" {
		return nil
	}
	return e.makeRoom(ctx, uuid, path, st)
}

// complete brings target t, which volume uuid owns, to what Export promises:
// logical unit 1 backed by path, and exactly the configured initiators
// allowed in. Each step tolerates another exporter having done it first.
func (e *Exporter) complete(ctx context.Context, uuid string, t target, path string) error {
	tid := strconv.Itoa(t.tid)
	if have, ok := t.luns[lun]; !ok {
		_, err := e.adm(ctx, "--mode", "logicalunit", "--op", "new", "--tid", tid, "--lun", strconv.Itoa(lun),
			"--backing-store", path, "--bstype", "rdwr")
		if alreadyExists(err) {
			return e.recheck(ctx, uuid, t.tid, path)
		}
		if err != nil {
			return e.failed(exporting(uuid), err)
		}
	} else if have != path {
		return errs.Wrap(errs.Conflict, fmt.Errorf("target %s serves %s, not %s", t.name, have, path),
			fmt.Sprintf("volume %s is already exported from other storage: unexport it first", uuid))
	}
	for _, a := range e.acl {
		if slices.Contains(t.acl, a) {
			continue
		}
		_, err := e.adm(ctx, "--mode", "target", "--op", "bind", "--tid", tid, initiatorFlag(a), a)
		if err != nil && !alreadyExists(err) {
			return e.failed(exporting(uuid), err)
		}
	}
	for _, a := range t.acl {
		if slices.Contains(e.acl, a) {
			continue
		}
		_, err := e.adm(ctx, "--mode", "target", "--op", "unbind", "--tid", tid, initiatorFlag(a), a)
		if err != nil && !notFound(err) {
			return e.failed(exporting(uuid), err)
		}
	}
	return nil
}

// recheck looks at target tid after another exporter added its logical
// unit first, and completes the rest.
func (e *Exporter) recheck(ctx context.Context, uuid string, tid int, path string) error {
	targets, err := e.show(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(targets, func(t target) bool { return t.tid == tid && t.name == e.TargetName(uuid) })
	if i < 0 || targets[i].luns[lun] == "" {
		return errs.Errorf(errs.Unavailable, "volume %s was exported and unexported at the same time; retry", uuid)
	}
	return e.complete(ctx, uuid, targets[i], path)
}

// initiatorFlag tells tgtadm whether an ACL entry is an initiator name
// (iqn., eui. and naa. are the iSCSI name formats) or an address.
func initiatorFlag(a string) string {
	for _, p := range []string{"iqn.", "eui.", "naa."} {
		if strings.HasPrefix(a, p) {
			return "--initiator-name"
		}
	}
	return "--initiator-address"
}

// freeTID picks a target id no target in targets has. Probing starts from a
// hash of the uuid rather than from 1 so that a tid freed by one Unexport
// is not at once reused for another volume: Unexport reads a target's tid
// and deletes by tid, and a quick reuse in between would let it remove the
// wrong target.
func (e *Exporter) freeTID(uuid string, targets []target) (int, bool) {
	used := make(map[int]bool, len(targets))
	for _, t := range targets {
		used[t.tid] = true
	}
	h := fnv.New32a()
	h.Write([]byte(uuid))
	start := int(h.Sum32() % uint32(e.space))
	for i := range e.space {
		if tid := 1 + (start+i)%e.space; !used[tid] {
			return tid, true
		}
	}
	return 0, false
}

// Unexport deletes volume uuid's target, with force: pdisk withdraws an
// export only once no machine should use it, and a session left by a
// crashed VM host must not keep it forever.
func (e *Exporter) Unexport(ctx context.Context, uuid string) error {
	if err := backend.CheckID(uuid); err != nil {
		return err
	}
	targets, err := e.show(ctx)
	if err != nil {
		return err
	}
	name := e.TargetName(uuid)
	i := slices.IndexFunc(targets, func(t target) bool { return t.name == name })
	if i < 0 {
		return nil
	}
	if err := e.deleteTarget(ctx, targets[i].tid); err != nil && !notFound(err) {
		return e.failed("volume "+uuid+" cannot be unexported", err)
	}
	return nil
}

func (e *Exporter) deleteTarget(ctx context.Context, tid int) error {
	_, err := e.adm(ctx, "--mode", "target", "--op", "delete", "--force", "--tid", strconv.Itoa(tid))
	return err
}

// List returns the uuids of the targets named with the configured prefix,
// including targets a crashed Export left incomplete.
func (e *Exporter) List(ctx context.Context) ([]string, error) {
	targets, err := e.show(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, t := range targets {
		if id, ok := strings.CutPrefix(t.name, e.prefix); ok && backend.ValidID(id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// show lists tgtd's iSCSI targets.
func (e *Exporter) show(ctx context.Context) ([]target, error) {
	out, err := e.adm(ctx, "--mode", "target", "--op", "show")
	if err != nil {
		return nil, e.failed("iSCSI exports cannot be listed", err)
	}
	return parseShow(out), nil
}

func exporting(uuid string) string { return "volume " + uuid + " cannot be exported" }

// admError is tgtadm's complaint, kept to tell "already exists" and "not
// found" from real failures.
type admError struct {
	args []string
	msg  string
	err  error
}

func (e *admError) Error() string {
	return fmt.Sprintf("tgtadm %s: %v: %s", strings.Join(e.args, " "), e.err, e.msg)
}

func (e *admError) Unwrap() error { return e.err }

// The phrases below are tgtadm's messages for its errors (the same in every
// release since 2008); its exit status is not specific enough to tell them
// apart.

func alreadyExists(err error) bool {
	var a *admError
	return errors.As(err, &a) && strings.Contains(a.msg, "already exists")
}

func notFound(err error) bool {
	var a *admError
	return errors.As(err, &a) && (strings.Contains(a.msg, "can't find") || strings.Contains(a.msg, "does not exist"))
}

func daemonDown(err error) bool {
	var a *admError
	return errors.As(err, &a) && strings.Contains(a.msg, "tgt daemon")
}

// failed gives a tgtadm error its code: tgtd not answering is Unavailable,
// anything else Internal. what says what could not be done, for people.
func (e *Exporter) failed(what string, err error) error {
	var coded *errs.Error
	if errors.As(err, &coded) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if daemonDown(err) {
		return errs.Wrap(errs.Unavailable, err, what+": the iSCSI target daemon (tgtd) is not answering on control port "+e.control)
	}
	return errs.Wrap(errs.Internal, err, what+": the iSCSI target daemon (tgtd) refused")
}

// adm runs tgtadm on the iSCSI driver of the configured tgtd and returns
// what it printed.
func (e *Exporter) adm(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"-C", e.control, "--lld", "iscsi"}, args...)
	cmd := exec.CommandContext(ctx, e.tgtadm, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &admError{args: args, msg: strings.TrimSpace(stderr.String()), err: err}
	}
	return stdout.String(), nil
}
