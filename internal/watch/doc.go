// Package watch tells the daemon, within milliseconds and without polling,
// that a managed file changed. It watches the parent directory of every
// file (a rename into place replaces the inode, which a watch on the file
// itself would miss) and every directory a symlink on the way leads through,
// and debounces bursts so one `mv` of a cert and a key is one notification.
package watch
