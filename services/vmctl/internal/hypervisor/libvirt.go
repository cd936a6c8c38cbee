package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"stratuslab.dev/platform/errs"
)

// Libvirt is the Hypervisor of one libvirt connection. libvirt's C library
// is thread-safe per connection and the Go binding reports each call's
// error from the call itself, so one connection serves every goroutine.
type Libvirt struct {
	uri      string
	virtType string
	// remote connections (to a libvirtd) are reopened when they drop;
	// test:/// and qemu:///embed live in this process and cannot.
	remote        bool
	detachTimeout time.Duration

	// mu guards conn: calls hold it for reading, a reconnect and Close
	// for writing, so that no call uses a connection being closed.
	mu   sync.RWMutex
	conn *libvirt.Connect
}

var _ Hypervisor = (*Libvirt)(nil)

// Open connects to the hypervisor at uri: "test:///default",
// "qemu:///embed?root=DIR" or "qemu:///system" (or another URI of those
// drivers, such as qemu+ssh://host/system). A connection to a libvirtd is
// reopened when it drops: the call that finds it dead is run again once on
// the new connection.
//
// For qemu:///embed, DIR holds the driver's state, and etc/qemu.conf in it
// is written, when missing, to run QEMU as this process's user and to log
// its output to files (there is no virtlogd). libvirt allows one embed
// root per process; as root, the compiled-in QEMU user of the distribution
// (Debian: libvirt-qemu) must exist even though it is not used.
func Open(ctx context.Context, uri string, opts Options) (*Libvirt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, errs.Errorf(errs.Invalid, "The libvirt URI %q is not valid: write e.g. qemu:///system or test:///default.", uri)
	}
	l := &Libvirt{uri: uri, detachTimeout: opts.DetachTimeout}
	if l.detachTimeout <= 0 {
		l.detachTimeout = 30 * time.Second
	}
	// A transport (qemu+ssh, test+unix) or a QEMU URI other than embed
	// reaches a libvirtd; plain test:/// and qemu:///embed run here.
	driver, transport, _ := strings.Cut(u.Scheme, "+")
	switch driver {
	case "test":
		l.virtType = virtTest
		l.remote = transport != ""
	case "qemu":
		l.virtType = opts.VirtType
		if l.virtType == "" {
			l.virtType = virtQEMU
		}
		if l.virtType != virtQEMU && l.virtType != virtKVM {
			return nil, errs.Errorf(errs.Invalid, "The domain type %q is not supported: use qemu (software emulation) or kvm.", opts.VirtType)
		}
		l.remote = transport != "" || u.Path != "/embed"
		if !l.remote {
			if err := prepareEmbedRoot(u.Query().Get("root")); err != nil {
				return nil, err
			}
		}
	default:
		return nil, errs.Errorf(errs.Invalid, "The libvirt URI %q names a driver the agent does not support: use qemu:// or test://.", uri)
	}
	if l.remote || driver == "qemu" {
		if err := startEventLoop(); err != nil {
			return nil, errs.Wrap(errs.Internal, err, "Cannot start libvirt's event loop.")
		}
	}
	conn, err := l.connect()
	if err != nil {
		return nil, err
	}
	l.conn = conn
	return l, nil
}

// connect opens a new connection to l.uri.
func (l *Libvirt) connect() (*libvirt.Connect, error) {
	conn, err := libvirt.NewConnect(l.uri)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, fmt.Sprintf("Cannot connect to the hypervisor at %s.", l.uri))
	}
	if l.remote {
		// Probes every 5 s and gives up after 3 missed answers, so that
		// a libvirtd that vanished without closing the socket shows as a
		// dead connection, which do reopens. Drivers without keep-alive
		// refuse, which is harmless.
		_ = conn.SetKeepAlive(5, 3)
	}
	return conn, nil
}

// do runs fn with the connection. When a remote connection turns out to
// be dead, it reopens it and runs fn once more, which is why every fn
// checks the state it acts on first (a reboot is the exception: a request
// that reached the old daemon before it died is repeated).
func (l *Libvirt) do(ctx context.Context, fn func(*libvirt.Connect) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conn, lost, err := l.run(fn)
	if !lost {
		return err
	}
	if rerr := l.reconnect(conn); rerr != nil {
		return errors.Join(err, rerr)
	}
	_, _, err = l.run(fn)
	return err
}

// run calls fn under the read lock and tells whether its failure came
// from a dead connection.
func (l *Libvirt) run(fn func(*libvirt.Connect) error) (conn *libvirt.Connect, lost bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.conn == nil {
		return nil, false, errClosed
	}
	err = fn(l.conn)
	return l.conn, err != nil && l.remote && connectionLost(l.conn, err), err
}

var errClosed = errs.New(errs.Unavailable, "The hypervisor connection is closed.")

// connectionLost reports whether err came from a connection that no longer
// works, rather than from the operation.
func connectionLost(conn *libvirt.Connect, err error) bool {
	var lv libvirt.Error
	if !errors.As(err, &lv) {
		return false
	}
	switch {
	case lv.Domain == libvirt.FROM_RPC, lv.Code == libvirt.ERR_SYSTEM_ERROR,
		lv.Code == libvirt.ERR_INVALID_CONN, lv.Code == libvirt.ERR_NO_CONNECT:
		alive, aerr := conn.IsAlive()
		return aerr != nil || !alive
	}
	return false
}

// reconnect replaces dead with a new connection, unless another goroutine
// already did.
func (l *Libvirt) reconnect(dead *libvirt.Connect) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return errClosed
	}
	if l.conn != dead {
		return nil
	}
	conn, err := l.connect()
	if err != nil {
		return err
	}
	_, _ = dead.Close() // the peer is gone: there is nothing to flush
	l.conn = conn
	return nil
}

// Close closes the connection. Calls in progress finish first.
func (l *Libvirt) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	_, err := l.conn.Close()
	l.conn = nil
	if err != nil {
		return fmt.Errorf("close the connection to %s: %w", l.uri, err)
	}
	return nil
}

// Info describes the host.
func (l *Libvirt) Info(ctx context.Context) (Info, error) {
	var in Info
	err := l.do(ctx, func(c *libvirt.Connect) error {
		var err error
		if in.Hostname, err = c.GetHostname(); err != nil {
			return fail(err, "read the host name")
		}
		lib, err := c.GetLibVersion()
		if err != nil {
			return fail(err, "read the libvirt version")
		}
		in.LibvirtVersion = version(lib)
		if in.Hypervisor, err = c.GetType(); err != nil {
			return fail(err, "read the hypervisor type")
		}
		hv, err := c.GetVersion()
		if err != nil {
			return fail(err, "read the hypervisor version")
		}
		in.HypervisorVersion = version(hv)
		node, err := c.GetNodeInfo()
		if err != nil {
			return fail(err, "read the host's CPUs and memory")
		}
		in.CPUs = int(node.Cpus)
		in.MemoryMiB = int64(node.Memory / 1024)
		return nil
	})
	return in, err
}

// version formats libvirt's major*1000000 + minor*1000 + micro.
func version(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}

// Define creates or redefines the domain d.
func (l *Libvirt) Define(ctx context.Context, d Domain) error {
	x, err := domainXML(d, l.virtType)
	if err != nil {
		return err
	}
	return l.do(ctx, func(c *libvirt.Connect) error {
		// No DOMAIN_DEFINE_VALIDATE: libvirt compiles its RNG schema on
		// every call (15 ms against 1 ms for the whole define and start
		// on the test driver), and the XML comes from typed structs; a
		// test validates what domainXML writes instead.
		dom, err := c.DomainDefineXML(x)
		if isCode(err, libvirt.ERR_OPERATION_FAILED) {
			// What libvirt says when the name or the uuid belongs to
			// another domain.
			return errs.Wrap(errs.Conflict, err, fmt.Sprintf("Cannot define machine %s: another domain on this host has its name %q or its uuid.", d.UUID, d.Name))
		}
		if err != nil {
			return fail(err, "define machine "+d.UUID)
		}
		_ = dom.Free()
		return nil
	})
}

// Start boots the domain unless it runs.
func (l *Libvirt) Start(ctx context.Context, uuid string) error {
	return l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
		if active, err := dom.IsActive(); err != nil || active {
			return failIf(err, "read the state of machine "+uuid)
		}
		if err := dom.Create(); err != nil {
			if isCode(err, libvirt.ERR_OPERATION_INVALID) {
				if active, _ := dom.IsActive(); active {
					return nil // started by someone else meanwhile
				}
			}
			return fail(err, "start machine "+uuid)
		}
		return nil
	})
}

// Shutdown presses the guest's power button. Flags 0 lets the driver pick
// its default: QEMU sends ACPI when the guest has no agent channel (ours
// have none), and the test driver refuses an explicit ACPI flag.
func (l *Libvirt) Shutdown(ctx context.Context, uuid string) error {
	return l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
		if active, err := dom.IsActive(); err != nil || !active {
			return failIf(err, "read the state of machine "+uuid)
		}
		if err := dom.Shutdown(); err != nil {
			if isCode(err, libvirt.ERR_OPERATION_INVALID) {
				if active, _ := dom.IsActive(); !active {
					return nil
				}
			}
			return fail(err, "shut down machine "+uuid)
		}
		return nil
	})
}

// Reboot asks the guest to reboot.
func (l *Libvirt) Reboot(ctx context.Context, uuid string) error {
	return l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
		if active, err := dom.IsActive(); err != nil || !active {
			if err == nil {
				return errs.Errorf(errs.Conflict, "Machine %s does not run, so it cannot reboot: start it instead.", uuid)
			}
			return fail(err, "read the state of machine "+uuid)
		}
		return failIf(dom.Reboot(0), "reboot machine "+uuid)
	})
}

// Destroy stops the domain at once.
func (l *Libvirt) Destroy(ctx context.Context, uuid string) error {
	err := l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
		if err := dom.Destroy(); err != nil {
			if isCode(err, libvirt.ERR_OPERATION_INVALID) {
				if active, _ := dom.IsActive(); !active {
					return nil
				}
			}
			return fail(err, "stop machine "+uuid)
		}
		return nil
	})
	if errs.CodeOf(err) == errs.NotFound {
		return nil
	}
	return err
}

// Undefine removes the definition of a domain that does not run.
func (l *Libvirt) Undefine(ctx context.Context, uuid string) error {
	flags := libvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
	if l.virtType != virtTest {
		// Leftovers of features we do not use, removed so that they
		// cannot make the undefine fail.
		flags |= libvirt.DOMAIN_UNDEFINE_NVRAM | libvirt.DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
	}
	err := l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
		if active, err := dom.IsActive(); err != nil || active {
			if err == nil {
				return errs.Errorf(errs.Conflict, "Machine %s still runs: stop it before removing its definition.", uuid)
			}
			return fail(err, "read the state of machine "+uuid)
		}
		return failIf(dom.UndefineFlags(flags), "remove the definition of machine "+uuid)
	})
	if errs.CodeOf(err) == errs.NotFound {
		return nil
	}
	return err
}

// State reports the domain's state.
func (l *Libvirt) State(ctx context.Context, uuid string) (State, error) {
	st := Unknown
	err := l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
		s, _, err := dom.GetState()
		if err != nil {
			return fail(err, "read the state of machine "+uuid)
		}
		st = stateOf(s)
		return nil
	})
	if errs.CodeOf(err) == errs.NotFound {
		return Missing, nil
	}
	return st, err
}

// List reports every domain on the host. A domain removed while the list is
// read is left out.
func (l *Libvirt) List(ctx context.Context) ([]DomainStatus, error) {
	var out []DomainStatus
	err := l.do(ctx, func(c *libvirt.Connect) error {
		out = out[:0]
		doms, err := c.ListAllDomains(0)
		if err != nil {
			return fail(err, "list the machines")
		}
		defer func() {
			for i := range doms {
				_ = doms[i].Free()
			}
		}()
		for i := range doms {
			info, err := doms[i].GetInfo()
			if isCode(err, libvirt.ERR_NO_DOMAIN) {
				continue
			}
			if err != nil {
				return fail(err, "read a machine's state")
			}
			id, err := doms[i].GetUUIDString()
			if err != nil {
				return fail(err, "read a machine's uuid")
			}
			name, err := doms[i].GetName()
			if err != nil {
				return fail(err, "read a machine's name")
			}
			out = append(out, DomainStatus{UUID: id, Name: name, State: stateOf(info.State),
				CPU: int(info.NrVirtCpu), MemoryMiB: int64(info.MaxMem >> 10), CPUTime: time.Duration(info.CpuTime)})
		}
		return nil
	})
	return out, err
}

// stateOf maps libvirt's states onto ours.
func stateOf(s libvirt.DomainState) State {
	switch s {
	case libvirt.DOMAIN_RUNNING, libvirt.DOMAIN_BLOCKED:
		return Running
	case libvirt.DOMAIN_PAUSED, libvirt.DOMAIN_PMSUSPENDED:
		return Paused
	case libvirt.DOMAIN_SHUTDOWN:
		return ShuttingDown
	case libvirt.DOMAIN_SHUTOFF:
		return Shutoff
	case libvirt.DOMAIN_CRASHED:
		return Crashed
	}
	return Unknown
}

// withDomain looks the domain up by uuid and runs fn on it.
func (l *Libvirt) withDomain(ctx context.Context, uuid string, fn func(*libvirt.Domain) error) error {
	if err := checkUUID(uuid); err != nil {
		return err
	}
	return l.do(ctx, func(c *libvirt.Connect) error {
		dom, err := c.LookupDomainByUUIDString(uuid)
		if err != nil {
			return fail(err, "find machine "+uuid)
		}
		defer dom.Free() // a failed unref only leaks
		return fn(dom)
	})
}

// domainXMLOf reads a domain's live definition, or its persistent one when
// inactive is set.
func domainXMLOf(dom *libvirt.Domain, inactive bool) (*libvirtxml.Domain, error) {
	var flags libvirt.DomainXMLFlags
	if inactive {
		flags = libvirt.DOMAIN_XML_INACTIVE
	}
	s, err := dom.GetXMLDesc(flags)
	if err != nil {
		return nil, fail(err, "read a machine's definition")
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(s); err != nil {
		return nil, fmt.Errorf("parse the definition libvirt returned: %w", err)
	}
	return &x, nil
}

// isCode reports whether err is a libvirt error with the given code.
func isCode(err error, code libvirt.ErrorNumber) bool {
	var lv libvirt.Error
	return errors.As(err, &lv) && lv.Code == code
}

// failIf is fail for an error that may be nil.
func failIf(err error, what string) error {
	if err == nil {
		return nil
	}
	return fail(err, what)
}

// fail gives a libvirt error a stable code and a message for people; what
// says what could not be done, e.g. "start machine <uuid>". libvirt's own
// text stays in the cause, for logs: it names host paths and internals.
func fail(err error, what string) error {
	var lv libvirt.Error
	if !errors.As(err, &lv) {
		return errs.Wrap(errs.Internal, err, "Cannot "+what+".")
	}
	switch lv.Code {
	case libvirt.ERR_NO_DOMAIN:
		return errs.Wrap(errs.NotFound, err, "Cannot "+what+": no such machine is defined on this host.")
	case libvirt.ERR_OPERATION_INVALID, libvirt.ERR_DOM_EXIST:
		return errs.Wrap(errs.Conflict, err, "Cannot "+what+": the machine is not in a state that allows it.")
	case libvirt.ERR_XML_ERROR, libvirt.ERR_XML_DETAIL, libvirt.ERR_INVALID_ARG, libvirt.ERR_CONFIG_UNSUPPORTED:
		return errs.Wrap(errs.Invalid, err, "Cannot "+what+": the hypervisor refused the definition.")
	case libvirt.ERR_NO_SUPPORT, libvirt.ERR_OPERATION_UNSUPPORTED, libvirt.ERR_ARGUMENT_UNSUPPORTED:
		return errs.Wrap(errs.Unavailable, err, "Cannot "+what+": this hypervisor does not support it.")
	case libvirt.ERR_OPERATION_TIMEOUT, libvirt.ERR_AGENT_UNRESPONSIVE:
		return errs.Wrap(errs.Timeout, err, "Cannot "+what+": the hypervisor did not answer in time; retry later.")
	case libvirt.ERR_NO_CONNECT, libvirt.ERR_INVALID_CONN:
		return errs.Wrap(errs.Unavailable, err, "Cannot "+what+": the hypervisor cannot be reached; retry later.")
	}
	// A failure to talk to a daemon: libvirtd itself, or one of the
	// daemons (network, storage) a driver asks for help.
	if lv.Domain == libvirt.FROM_RPC {
		return errs.Wrap(errs.Unavailable, err, "Cannot "+what+": a libvirt service cannot be reached; retry later.")
	}
	// Among the rest, ERR_SYSTEM_ERROR is an operating system call that
	// failed, such as a disk file that does not exist.
	return errs.Wrap(errs.Internal, err, "Cannot "+what+".")
}
