package hypervisor

import (
	"context"
	"fmt"
	"time"

	"libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"stratuslab.dev/platform/errs"
)

// Attach plugs disk d into the domain. On a running domain the disk goes
// into the guest first and into the persistent definition second, each
// step skipped when already done, so that a retry after a failure in
// between completes the job.
//
// libvirt's test driver has no device hot-plug: there Attach edits the
// persistent definition only (what a running domain would see after its
// next start), so that flows built on Attach run against it.
func (l *Libvirt) Attach(ctx context.Context, uuid string, d Disk) error {
	want, err := diskXML(d)
	if err != nil {
		return err
	}
	if l.virtType == virtTest {
		return l.editDefinition(ctx, uuid, func(x *libvirtxml.Domain) (bool, error) {
			if found, err := hasDisk(x, want, uuid); found || err != nil {
				return false, err
			}
			x.Devices.Disks = append(x.Devices.Disks, want)
			return true, nil
		})
	}
	spec, err := want.Marshal()
	if err != nil {
		return fmt.Errorf("write the definition of disk %s: %w", d.Device, err)
	}
	return l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
		active, err := dom.IsActive()
		if err != nil {
			return fail(err, "read the state of machine "+uuid)
		}
		if active {
			live, err := domainXMLOf(dom, false)
			if err != nil {
				return err
			}
			found, err := hasDisk(live, want, uuid)
			if err != nil {
				return err
			}
			if !found {
				if err := dom.AttachDeviceFlags(spec, libvirt.DOMAIN_DEVICE_MODIFY_LIVE); err != nil {
					return fail(err, fmt.Sprintf("attach disk %s to machine %s", d.Device, uuid))
				}
			}
		}
		config, err := domainXMLOf(dom, true)
		if err != nil {
			return err
		}
		found, err := hasDisk(config, want, uuid)
		if found || err != nil {
			return err
		}
		return failIf(dom.AttachDeviceFlags(spec, libvirt.DOMAIN_DEVICE_MODIFY_CONFIG),
			fmt.Sprintf("attach disk %s to the definition of machine %s", d.Device, uuid))
	})
}

// Detach unplugs the disk at device. On a running domain it asks the guest
// to release the disk (ACPI PCI hot-unplug for virtio), waits until the
// guest did, until the DetachTimeout of Open's options has passed since
// the call (but at least the 5 s libvirt waits itself), and only then
// removes the disk from the persistent definition, so that a guest that
// never lets go leaves the disk attached in both and the error says so.
// A guest with no operating system, or one without ACPI hot-plug, never
// releases a virtio disk: destroy the machine and detach then.
//
// On libvirt's test driver Detach edits the persistent definition only,
// as Attach does.
func (l *Libvirt) Detach(ctx context.Context, uuid, device string) error {
	if _, err := busOf(device); err != nil {
		return err
	}
	if l.virtType == virtTest {
		err := l.editDefinition(ctx, uuid, func(x *libvirtxml.Domain) (bool, error) {
			i := diskIndex(x, device)
			if i < 0 {
				return false, nil
			}
			x.Devices.Disks = append(x.Devices.Disks[:i], x.Devices.Disks[i+1:]...)
			return true, nil
		})
		if errs.CodeOf(err) == errs.NotFound {
			return nil
		}
		return err
	}
	what := fmt.Sprintf("detach disk %s from machine %s", device, uuid)
	deadline := time.Now().Add(l.detachTimeout)
	requested := false
	err := l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
		active, err := dom.IsActive()
		if err != nil || !active {
			return failIf(err, "read the state of machine "+uuid)
		}
		live, err := domainXMLOf(dom, false)
		if err != nil {
			return err
		}
		i := diskIndex(live, device)
		if i < 0 {
			return nil
		}
		spec, err := live.Devices.Disks[i].Marshal()
		if err != nil {
			return fmt.Errorf("write the definition of disk %s: %w", device, err)
		}
		// libvirt's QEMU driver waits up to 5 s for the guest itself
		// and then returns success while the removal is still pending,
		// so a guest that does not answer costs at least that long. On
		// i440fx, QEMU accepts a repeated request for a pending unplug,
		// so a retried Detach simply waits again.
		if err := dom.DetachDeviceFlags(spec, libvirt.DOMAIN_DEVICE_MODIFY_LIVE); err != nil {
			return fail(err, what)
		}
		requested = true
		return nil
	})
	if err == nil && requested {
		err = l.waitDetached(ctx, uuid, device, deadline)
	}
	if err != nil {
		if errs.CodeOf(err) == errs.NotFound {
			return nil
		}
		return err
	}
	err = l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
		config, err := domainXMLOf(dom, true)
		if err != nil {
			return err
		}
		i := diskIndex(config, device)
		if i < 0 {
			return nil
		}
		spec, err := config.Devices.Disks[i].Marshal()
		if err != nil {
			return fmt.Errorf("write the definition of disk %s: %w", device, err)
		}
		return failIf(dom.DetachDeviceFlags(spec, libvirt.DOMAIN_DEVICE_MODIFY_CONFIG), what)
	})
	if errs.CodeOf(err) == errs.NotFound {
		return nil
	}
	return err
}

// waitDetached polls the live definition until the guest released device,
// the domain stopped, or the deadline passed. Polling rather than
// libvirt's device-removed event keeps no callback state per connection,
// and libvirt documents rereading the definition as equally valid.
func (l *Libvirt) waitDetached(ctx context.Context, uuid, device string, deadline time.Time) error {
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		gone := false
		err := l.withDomain(ctx, uuid, func(dom *libvirt.Domain) error {
			active, err := dom.IsActive()
			if err != nil || !active {
				gone = err == nil
				return failIf(err, "read the state of machine "+uuid)
			}
			live, err := domainXMLOf(dom, false)
			gone = err == nil && diskIndex(live, device) < 0
			return err
		})
		if err != nil || gone {
			return err
		}
		if time.Now().After(deadline) {
			return errs.Errorf(errs.Timeout, "The guest of machine %s did not release disk %s within %s, so the disk is still attached. "+
				"Its operating system must support ACPI hot-unplug (a guest still booting may not yet): retry, or stop the machine and detach the disk then.",
				uuid, device, l.detachTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// editDefinition rewrites the persistent definition of a domain through
// edit, which reports whether it changed anything.
func (l *Libvirt) editDefinition(ctx context.Context, uuid string, edit func(*libvirtxml.Domain) (bool, error)) error {
	if err := checkUUID(uuid); err != nil {
		return err
	}
	return l.do(ctx, func(c *libvirt.Connect) error {
		dom, err := c.LookupDomainByUUIDString(uuid)
		if err != nil {
			return fail(err, "find machine "+uuid)
		}
		defer dom.Free() // a failed unref only leaks
		x, err := domainXMLOf(dom, true)
		if err != nil {
			return err
		}
		if x.Devices == nil {
			x.Devices = &libvirtxml.DomainDeviceList{}
		}
		changed, err := edit(x)
		if err != nil || !changed {
			return err
		}
		s, err := x.Marshal()
		if err != nil {
			return fmt.Errorf("write the definition of machine %s: %w", uuid, err)
		}
		redefined, err := c.DomainDefineXML(s)
		if err != nil {
			return fail(err, "change the definition of machine "+uuid)
		}
		_ = redefined.Free()
		return nil
	})
}

// diskIndex returns the index of the disk at device in x, or -1.
func diskIndex(x *libvirtxml.Domain, device string) int {
	if x.Devices == nil {
		return -1
	}
	for i, d := range x.Devices.Disks {
		if d.Target != nil && d.Target.Dev == device {
			return i
		}
	}
	return -1
}

// hasDisk reports whether x has want at its device already; another
// volume at that device is errs.Conflict.
func hasDisk(x *libvirtxml.Domain, want libvirtxml.DomainDisk, uuid string) (bool, error) {
	i := diskIndex(x, want.Target.Dev)
	if i < 0 {
		return false, nil
	}
	if !sameSource(x.Devices.Disks[i].Source, want.Source) {
		return false, errs.Errorf(errs.Conflict, "Machine %s already has another disk at device %s: detach it first or choose another device.", uuid, want.Target.Dev)
	}
	return true, nil
}
