// Package atomicfile is sensu-tlsd's one way to replace a file: a reader
// sees the old bytes or the new ones, never half, and after a crash the
// file holds one of them. The new bytes go to a temporary file in the same
// directory that has its final mode and owner before the first byte is
// written (a key is never readable by others, not even for an instant); it
// is fsynced, renamed over the path, and the directory is fsynced.
package atomicfile
