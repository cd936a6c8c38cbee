package config

import (
	"path/filepath"
	"strings"
)

// Key is one configuration parameter.
type Key struct {
	// Name is the key in stratuslab-user.cfg, e.g. "pdisk_endpoint".
	Name string
	// Flag is the long command-line option without dashes; Short its
	// one-letter form, if any.
	Flag  string
	Short string
	// Env is the environment variable.
	Env string
	// Help says what the key is for, in one line.
	Help string
	// Doc is the longer explanation written in the reference file.
	Doc string
	// Secret values are never shown.
	Secret bool
	// Bool keys take no value on the command line.
	Bool bool
}

// Names of the keys the client knows.
const (
	Endpoint            = "endpoint"
	PdiskEndpoint       = "pdisk_endpoint"
	MarketplaceEndpoint = "marketplace_endpoint"
	Username            = "username"
	Password            = "password"
	PemCertificate      = "pem_certificate"
	PemKey              = "pem_key"
	P12Certificate      = "p12_certificate"
	P12Password         = "p12_password"
	UserPublicKeyFile   = "user_public_key_file"
	EndpointTimeout     = "endpoint_timeout"
	Insecure            = "insecure"
	CAFile              = "ca_file"
)

// SelectedSection is the key of [default] naming the section to use.
const SelectedSection = "selected_section"

// Section options choosing the section, after the user guide.
const (
	SectionFlag  = "user-config-section"
	SectionShort = "S"
	SectionEnv   = "STRATUSLAB_USER_CONFIG_SECTION"
)

// FileEnv names another configuration file than the usual one.
const FileEnv = "STRATUSLAB_USER_CONFIG"

// DefaultTimeout is endpoint_timeout, in seconds, when nothing sets it.
const DefaultTimeout = "30"

// key builds a Key whose option and variable follow the usual rule.
func key(name, help, doc string) Key {
	return Key{Name: name, Flag: strings.ReplaceAll(name, "_", "-"), Env: "STRATUSLAB_" + strings.ToUpper(name), Help: help, Doc: doc}
}

// Keys lists every key, in the order of the reference file.
func Keys() []Key {
	user := key(Username, "your username on the cloud", "Your username on the cloud, given by its administrator.")
	user.Short = "u"
	pass := key(Password, "your password on the cloud", "Your password. If it holds a percent sign, double it (%%).\nGive either username and password, or a certificate; if both are\ngiven, username and password are used.")
	pass.Short, pass.Secret = "p", true
	pem := key(PemCertificate, "X.509 certificate or proxy (PEM) to authenticate with", "X.509 certificate or RFC 3820 proxy (PEM) to authenticate with.\nDefault: $HOME/.globus/usercert.pem when that file exists.")
	pem.Flag = "pem-cert"
	pemKey := key(PemKey, "key of the PEM certificate", "Private key of pem_certificate (PEM); a proxy file holds its own key.\nDefault: $HOME/.globus/userkey.pem when that file exists.")
	p12 := key(P12Certificate, "PKCS#12 certificate", "PKCS#12 certificate, to authenticate with and to sign image metadata\nfor the Marketplace.")
	p12.Flag = "p12-cert"
	p12Pass := key(P12Password, "password of the PKCS#12 certificate", "Password of the PKCS#12 certificate.")
	p12Pass.Secret = true
	sshKey := key(UserPublicKeyFile, "public SSH key put into your machines", "Public SSH key put into the machines you start, to log in to them.\nDefault: $HOME/.ssh/id_rsa.pub.")
	sshKey.Flag, sshKey.Env = "key", "STRATUSLAB_KEY"
	insecure := key(Insecure, "accept any certificate from the cloud (test clouds only)", "Set to true to accept any certificate from the cloud. Anyone on the\nnetwork path could then read your password: only for a test cloud.\nPrefer ca_file. Default: false.")
	insecure.Bool = true
	return []Key{
		key(Endpoint, "the cloud's entry point, e.g. cloud.example.org", "The cloud entry point: a host name (https is assumed) or a URL such as\nhttps://cloud.example.org or http://127.0.0.1:8080 for a local test cloud."),
		key(PdiskEndpoint, "the persistent disk service (default: endpoint)", "The persistent disk (storage) service. Default: the endpoint."),
		key(MarketplaceEndpoint, "the Marketplace of images (default: the endpoint's /marketplace)", "The Marketplace of machine images: a URL such as\nhttps://cloud.example.org/marketplace, or a host name (https and\n/marketplace are assumed). Default: the endpoint's /marketplace."),
		user, pass, pem, pemKey, p12, p12Pass, sshKey,
		key(EndpointTimeout, "seconds to wait for the cloud's answer", "Seconds to wait for an answer of the cloud before giving up. Default: "+DefaultTimeout+"."),
		key(CAFile, "PEM file of authorities to trust for the cloud's certificate", "PEM file of certificate authorities to trust for the cloud's certificate,\nbesides the system's: the certificate of a cloud that signs its own."),
		insecure,
	}
}

// Lookup finds a key by name.
func Lookup(name string) (Key, bool) {
	for _, k := range Keys() {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// Path is the usual configuration file of the user whose home is home.
func Path(home string) string {
	return filepath.Join(home, ".stratuslab", "stratuslab-user.cfg")
}
