package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/sdk"
	"stratuslab.dev/platform/config"
	"stratuslab.dev/services/authn"
	"stratuslab.dev/services/cimi"
	"stratuslab.dev/services/marketplace"
	"stratuslab.dev/stratuslab/cmd/stratuslab/internal/seed"
)

// seedFlag is the all-in-one's own setting: whether it publishes the
// site's images (the seed catalogue). Only the all-in-one has it, so it
// is read here rather than among the bootstrap settings every service
// shares.
const (
	seedFlag = "seed-catalogue"
	seedEnv  = "STRATUSLAB_SEED_CATALOGUE"
)

// imagesDir is where the site's images are, as the gateway serves them.
const imagesDir = "images"

// seedSetting takes --seed-catalogue[=BOOL] out of args, the rest being
// the bootstrap settings' flags, and returns its value: the flag, else
// STRATUSLAB_SEED_CATALOGUE, else true.
func seedSetting(args []string, getenv func(string) string) (bool, []string, error) {
	on := true
	if v := getenv(seedEnv); v != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return false, nil, fmt.Errorf("environment %s: %q is not true or false", seedEnv, v)
		}
		on = b
	}
	rest := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != seedFlag {
			rest = append(rest, a)
			continue
		}
		on = true
		if hasValue {
			b, err := strconv.ParseBool(value)
			if err != nil {
				return false, nil, fmt.Errorf("flag --%s: %q is not true or false", seedFlag, value)
			}
			on = b
		}
	}
	return on, rest, nil
}

// seedUsage completes the bootstrap settings' usage text.
func seedUsage() string {
	return fmt.Sprintf("\nAll-in-one only:\n  --%s[=BOOL]  publish the site's images in <data_dir>/%s (the test appliance %s) in the Marketplace at start (%s; default true)\n",
		seedFlag, imagesDir, seed.ApplianceFile, seedEnv)
}

// prepareSeed signs the entries of the site's images. A failure is logged
// and the cloud starts without them: the catalogue is a convenience.
func prepareSeed(ctx context.Context, boot config.Bootstrap, gw *cimi.Service, log *slog.Logger) *seed.Catalogue {
	started := time.Now()
	cat, err := seed.Prepare(ctx, seed.Options{
		ImagesDir: filepath.Join(boot.DataDir, imagesDir),
		KeyDir:    filepath.Join(boot.DataDir, marketplace.Name),
		BaseURL:   gw.Scheme() + "://" + publicAddr(boot.Listen, gw.Addr()),
		Email:     "images@" + siteDomain(),
		Images:    []seed.Image{seed.Appliance(debianRelease())},
	})
	if err != nil {
		log.Error("seed catalogue: the site's images will not be published", "error", err)
		return nil
	}
	if cat.KeyCreated {
		log.Info("seed catalogue: image endorser key made", "endorser", cat.Endorser,
			"path", filepath.Join(boot.DataDir, marketplace.Name, seed.KeyFile))
	}
	for _, e := range cat.Entries {
		log.Info("seed catalogue: entry signed", "file", e.File, "identifier", e.Identifier, "tag", e.Tag,
			"endorser", cat.Endorser, "took", time.Since(started).Round(time.Millisecond).String())
	}
	return cat
}

// publishSeed uploads the catalogue as the administrator once the cloud
// answers. It never fails the cloud: what went wrong is logged, with what
// to do.
func publishSeed(ctx context.Context, boot config.Bootstrap, gw *cimi.Service, cat *seed.Catalogue, log *slog.Logger) {
	if cat == nil || len(cat.Entries) == 0 {
		return
	}
	base, opts := clientOptions(boot, gw)
	path := filepath.Join(boot.DataDir, authn.PasswordFile)
	password, err := waitPassword(ctx, path, seed.DefaultPatience)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("seed catalogue: not published", "error", err)
		}
		return
	}
	p := seed.Publisher{
		Reader:   sdk.New(base, opts...),
		Uploader: sdk.New(base, append(opts, sdk.WithBasicAuth("admin", password))...),
		Log:      log,
	}
	if err := p.Publish(ctx, cat); err != nil && ctx.Err() == nil {
		log.Error("seed catalogue: not published; the administrator's first password in "+path+
			" is used to upload: if it changed, upload the entries with stratus upload-metadata", "error", err)
	}
}

// waitPassword reads the administrator's first password, which authn
// writes at the first start, waiting for it up to patience.
func waitPassword(ctx context.Context, path string, patience time.Duration) (string, error) {
	deadline := time.Now().Add(patience)
	for {
		b, err := os.ReadFile(path)
		if p := strings.TrimSpace(string(b)); err == nil && p != "" {
			return p, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("read the administrator's password: %w", err)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no administrator password in %s after %s", path, patience)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clientOptions say how the all-in-one reaches its own gateway: over
// loopback when it serves plain HTTP, else at its public address (the
// names in its certificate), trusting the certificate it serves.
func clientOptions(boot config.Bootstrap, gw *cimi.Service) (string, []sdk.Option) {
	opts := []sdk.Option{sdk.WithUserAgent("stratuslab-seed"), sdk.WithTimeout(time.Minute)}
	if gw.Scheme() == "http" {
		_, port, _ := net.SplitHostPort(gw.Addr())
		return "http://" + net.JoinHostPort(loopbackOf(gw.Addr()), port), opts
	}
	return "https://" + publicAddr(boot.Listen, gw.Addr()), append(opts, sdk.WithCAFile(gatewayCert(boot)))
}

// gatewayCert is the certificate file of a gateway serving HTTPS: the one
// it was given, else the self-signed one it made.
func gatewayCert(boot config.Bootstrap) string {
	if boot.TLSCert != "" {
		return boot.TLSCert
	}
	return filepath.Join(boot.DataDir, cimi.Name, "tls", "cert.pem")
}

// imageCAs is pdisk's image_cas in the all-in-one: the site's setting
// when there is one, else the gateway's own certificate when it serves
// HTTPS, so that the seed catalogue's locations (on the gateway) download
// even when its certificate is self-signed or from a private CA.
func imageCAs(boot config.Bootstrap, scheme string) string {
	if boot.ImageCAs != "" || scheme != "https" {
		return boot.ImageCAs
	}
	return gatewayCert(boot)
}

// loopbackOf is the address to reach a listener on addr from this
// machine: addr's host, or loopback when it is every interface.
func loopbackOf(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	if ip, err := netip.ParseAddr(host); err != nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return host
}

// publicAddr is the gateway's address as downloaders name it: the host
// it was told to listen on, or this machine's name when that host is
// every interface, with the port it listens on.
func publicAddr(listen, actual string) string {
	host, _, _ := net.SplitHostPort(listen)
	_, port, _ := net.SplitHostPort(actual)
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		} else {
			host = "localhost"
		}
	}
	return net.JoinHostPort(host, port)
}

// siteDomain is the e-mail domain of the site's image endorser: this
// machine's name when it is a domain name, else stratuslab.local.
func siteDomain() string {
	name, err := os.Hostname()
	if err == nil && strings.Contains(name, ".") && metadata.ValidEmail("images@"+name) {
		return strings.ToLower(name)
	}
	return "stratuslab.local"
}

// debianRelease is this machine's Debian release (VERSION_ID of
// /etc/os-release), the one whose kernel scripts/appliance.sh puts in the
// test appliance; empty when unknown.
func debianRelease() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VERSION_ID="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}
