// Package sensu reads, lints and rewrites Sensu Go's own configuration files
// (backend.yml, agent.yml and the packages' environment files) without
// disturbing what sensu-tlsd does not own.
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
// BackendTLS and AgentTLS). Regenerator keeps them pointing at the managed
// certificate files when a rotation moves them.
package sensu
