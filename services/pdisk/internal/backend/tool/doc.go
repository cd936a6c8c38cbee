// Package tool is what the lvm and rbd storage backends share to drive
// command-line programs (lvm2, dmsetup, rbd, qemu-img): a Runner that runs
// one program with an argument vector, never through a shell, and keeps its
// standard error for the error it returns; a Recorder that stands in for it
// in tests of command construction; the inspection of an image file before
// import; the names of the temporary volumes that make creation atomic; the
// check of names from configuration; and the context that cleans up after a
// failure.
package tool
