// Package testbin builds the programs sensu-tlsd's tests run (the
// sensu-tlsd binary, the stand-in backend) into a directory private to one
// test process: made by os.MkdirTemp (mode 0700) and removed when the
// tests end. A fixed, shared path would let any local user who creates it
// first plant a program that `make test` runs as root, and would leave a
// root run's files in the way of a later run as another user.
//
// A test package that builds programs calls Main from its TestMain.
package testbin
