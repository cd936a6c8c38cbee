// Package contextdisk builds the CD-ROM a machine reads at boot to learn who
// it is: its SSH key, hostname, static address and the user's context pairs
// and cloud-init data. The image is an ISO 9660 file system written in Go,
// byte for byte the same for the same Spec, so that an agent may rebuild it
// after a crash and get the disk the machine already has.
//
// Two methods, as the original StratusLab offered:
//
//   - "one" (the default): the HEPiX/OpenNebula disk labelled _STRATUSLAB
//     with context.sh (KEY="value" lines) and init.sh, which installs the key
//     for root. context.sh also carries the keys today's cloud-init
//     OpenNebula datasource reads (SSH_PUBLIC_KEY, SET_HOSTNAME, ETH0_*,
//     USER_DATA).
//   - "cloud-init": a NoCloud seed labelled cidata (user-data, meta-data,
//     network-config) that an unmodified cloud-init finds by itself, plus the
//     original context.sh keys CONTEXT_METHOD, CLOUD_INIT_AUTHORIZED_KEYS and
//     CLOUD_INIT_USER_DATA for images built for StratusLab.
//
// Why two labels: cloud-init's OpenNebula datasource reads any ISO 9660
// disk holding context.sh, but the boot-time ds-identify generator (Debian
// 12, cloud-init 22.4) enables that datasource only for the labels CONTEXT
// and CDROM, and otherwise turns cloud-init off. A _STRATUSLAB disk therefore
// serves StratusLab images and cloud-init images whose datasource list is
// fixed, and Spec.Label = "CONTEXT" serves stock cloud images on method
// "one"; the cloud-init method's cidata label is one ds-identify knows.
package contextdisk
