// Package config resolves the stratus client's settings the way the
// StratusLab user guide describes: each key of stratuslab-user.cfg
// (endpoint, username, pem_certificate, ...) can also be given as a
// command-line option (underscores become hyphens: --pdisk-endpoint) or an
// environment variable (STRATUSLAB_PDISK_ENDPOINT), with a few historical
// exceptions (--pem-cert, --p12-cert, --key/STRATUSLAB_KEY). The command
// line wins over the environment, which wins over the file's selected
// section, then its [default] section, then the built-in defaults.
package config
