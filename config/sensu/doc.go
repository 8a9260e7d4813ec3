// Package sensu is the one home of what sensu-tlsd knows about Sensu Go:
// it reads, lints and rewrites Sensu's own configuration files
// (backend.yml, agent.yml and the packages' environment files) without
// disturbing what sensu-tlsd does not own, and it holds the facts the rest
// of the tree asks about Sensu.
//
//   - node.go: ReadNode, the one reader of what a Sensu process runs with
//     (its YAML file with its environment files over it, with Sensu's
//     rules: the last duplicate key, space-separated lists, an empty
//     variable as unset).
//   - certkeys.go: the one table of TLS keys (cert, key, CA, profile, the
//     hosts the certificate must cover, whether Sensu reads it only at
//     start, which managed certificate it follows).
//   - defaults.go: Sensu's default files, settings, listeners and health
//     endpoints.
//   - keys.go: every setting each role reads, its environment variable and
//     which settings sensu-tlsd owns.
//   - lint.go, tls.go, document.go, envfile.go, patch.go, write.go: the
//     linter and the editor.
//
// Editing patches the original bytes: only the spans of values that change
// are replaced and new keys are appended, so comments, key order, blank
// lines and foreign keys survive and a document with nothing to change is
// written back byte for byte. Every result is parsed again and compared
// with the intended values before it may be written; a patch that cannot be
// proven right falls back to re-encoding the node tree, and a result that is
// still wrong is refused.
//
// The keys sensu-tlsd owns are exactly those of Sensu's security guide (see
// BackendTLS and AgentTLS). The package is a library: the bus consumer that
// rewrites the files on a rotation is internal/regenerate.
package sensu
