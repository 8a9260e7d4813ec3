// Package layering makes sensu-tlsd's layering a checked rule. Its test
// states, for every package of the module, which of the module's packages
// it may import, and a few rules that hold whatever the table says: the
// event contract needs only the standard library, consumers of certificate
// changes do not pull in the renewal engine, the renewal engine imports no
// consumer, and no production package imports test support. It fails
// naming the import that breaks a rule, and for a package the table does
// not know, so the table stays complete.
//
// The package has no code: it holds the test.
package layering
