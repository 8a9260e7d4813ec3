// Package golden compares a test's output with a file under testdata and
// rewrites the file when the test runs with -update. It is the one
// golden-file helper of sensu-tlsd's tests and is imported only by tests.
package golden
