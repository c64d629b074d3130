// Package examples holds the example policy test files users copy (the
// YAML files beside this one), and gives the binary the one `idgate dev`
// runs, so that it works outside the repository too.
package examples

import _ "embed"

// DevScenario is dev-scenario.yaml, the policy test file whose policies
// `idgate dev` enforces unless told otherwise.
//
//go:embed dev-scenario.yaml
var DevScenario []byte
