// Package appliance gives tests the StratusLab test appliance, our
// "ttylinux": a tiny disk image, built by scripts/appliance.sh from Debian
// packages, whose init reads the contextualisation CD-ROM and reports what it
// found on the serial console. Tests boot it under QEMU (TCG) to see that a
// real kernel reads the context disk, that a hot-plugged disk appears and that
// an ACPI shutdown stops the machine.
//
// The image is built once per machine into a cache folder and shared by every
// test process; the script rebuilds it only when its inputs change and
// serialises concurrent builds with a lock file.
//
// Every line the guest prints for tests starts with [Marker]; the rest is a
// report such as "hostname=web-1", "disks=sr0 vda vdb" or "ready" (the full
// list is at the top of scripts/appliance.sh). [Wait] and [WaitFor] read
// them from a serial log file, such as libvirt's <serial type='file'>.
package appliance
