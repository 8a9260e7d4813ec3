// Package flock is sensu-tlsd's one advisory file lock: an exclusive
// flock(2) that keeps sensu-tlsd processes sharing a state directory (the
// daemon, `renew`, `services act`, `migrate`) and the goroutines of one
// process apart. flock locks conflict between open descriptors, so every
// holder opens the file itself; closing the descriptor releases the lock,
// also when the process dies.
package flock
