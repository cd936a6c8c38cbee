package config

import (
	"fmt"
	"strings"
)

// Reference returns the commented reference configuration that
// stratus copy-config installs: every key explained, all of them commented
// out so that the defaults apply until the user edits the file.
func Reference() string {
	var b strings.Builder
	b.WriteString(`# StratusLab client configuration: $HOME/.stratuslab/stratuslab-user.cfg
#
# Each value can come from four places; the first that sets it wins:
#   1. the command line:          --pdisk-endpoint https://...
#   2. the environment:           STRATUSLAB_PDISK_ENDPOINT=https://...
#   3. this file:                 pdisk_endpoint = https://...
#   4. the defaults given below.
# Option and variable names follow from the key (underscores become hyphens;
# upper case with STRATUSLAB_ in front), except pem_certificate (--pem-cert),
# p12_certificate (--p12-cert) and user_public_key_file (--key, STRATUSLAB_KEY).
#
# The [default] section is always read. Other sections describe other clouds;
# the one chosen by -S/--user-config-section, STRATUSLAB_USER_CONFIG_SECTION or
# selected_section in [default] overrides [default] key by key.
#
# Values may be written in double quotes. A percent sign must be doubled (%%).
# Lines starting with # or ; are comments. Keep this file readable only by you
# (mode 0600): it may hold your password.

[default]

# The section to use besides [default], e.g. the [my-cloud] example below.
#selected_section = my-cloud
`)
	for _, k := range Keys() {
		b.WriteString("\n")
		for _, line := range strings.Split(k.Doc, "\n") {
			fmt.Fprintf(&b, "# %s\n", line)
		}
		fmt.Fprintf(&b, "# Command line: --%s", k.Flag)
		if k.Short != "" {
			fmt.Fprintf(&b, " or -%s", k.Short)
		}
		fmt.Fprintf(&b, "; environment: %s\n#%s = %s\n", k.Env, k.Name, example(k.Name))
	}
	b.WriteString(`
# Another cloud, chosen with -S my-cloud or selected_section = my-cloud:
#[my-cloud]
#endpoint = cloud.example.org
#username = clouduser
#password = cloudpass
#user_public_key_file = /home/clouduser/.ssh/id_rsa-mycloud.pub
`)
	return b.String()
}

func example(name string) string {
	switch name {
	case Endpoint:
		return "cloud.example.org"
	case PdiskEndpoint:
		return "pdisk.example.org"
	case MarketplaceEndpoint:
		return "https://cloud.example.org/marketplace"
	case Username:
		return "sluser"
	case Password:
		return "slpass"
	case PemCertificate:
		return "/home/sluser/.globus/usercert.pem"
	case PemKey:
		return "/home/sluser/.globus/userkey.pem"
	case P12Certificate:
		return "/home/sluser/.globus/usercert.p12"
	case P12Password:
		return "p12pass"
	case UserPublicKeyFile:
		return "/home/sluser/.ssh/id_rsa.pub"
	case EndpointTimeout:
		return DefaultTimeout
	case CAFile:
		return "/home/sluser/.stratuslab/cloud-ca.pem"
	case Insecure:
		return "false"
	}
	return ""
}
