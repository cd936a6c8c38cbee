// Package seed gives the all-in-one cloud a local Marketplace catalogue, so
// that the user tutorial — find an appliance in the Marketplace, then
// `stratus run-instance <id>` — works on a machine with no other
// Marketplace to reach.
//
// The site's image files live in <data_dir>/images, which the gateway
// serves at /images/<file>. Prepare signs an entry for each known image
// found there with the site's image endorser key: an RSA key and a
// self-signed certificate made at the first start and kept in
// <data_dir>/marketplace/seed-key.pem (never a key from the repository,
// which anyone could use to sign entries this cloud would then trust as
// its own). Publish uploads the entries through the gateway, as the
// administrator, unless the catalogue already holds them.
package seed
