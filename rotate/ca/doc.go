// Package ca is sensu-tlsd's local certificate authority: what the cfssl
// recipe in the Sensu security guide does by hand (a CA, then one
// certificate per backend, an etcd client and an agent), as a library. Files
// follow cfssljson's naming (ca.pem, ca-key.pem, NAME.pem, NAME-key.pem) so
// operators who know the guide recognise them.
package ca
