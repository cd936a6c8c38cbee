// Package metadata is the StratusLab Appliance Marketplace entry: the
// RDF/XML document that names an image by the SHA-1 of its bytes, says
// where to download it, what it holds and who vouches for it.
//
// It parses entries with a reader that refuses DTDs, entities, oversized
// and deeply nested documents; renders them back deterministically;
// validates them against the Marketplace rules, reporting every broken rule
// under a stable name; computes the 27-character identifier and the image
// digests; fills the endorsement block from a certificate; and builds a new
// draft entry from an image (stratus build-metadata).
//
// Signing and signature checking live in the xmlsig package: an enveloped
// XML signature covers the exact bytes of a document, so Render never writes
// one and Parse only reports that one is present.
package metadata
