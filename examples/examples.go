// Package examples holds the example configs shipped with multihome, embedded
// so the demo runs the same file a reader finds in the repository.
package examples

import "embed"

// FS holds every *.yaml file of this folder.
//
//go:embed *.yaml
var FS embed.FS

// Lab returns the config of the demo lab (lab.yaml).
func Lab() []byte {
	b, err := FS.ReadFile("lab.yaml")
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	return b
}
