package main

import (
	"os"

	"github.com/idgate/idgate/policy"
	"github.com/idgate/idgate/policytest"
)

// loadPolicySets loads Istio documents from files and directories. Each
// policy test file is a set of its own (the policies it tests, as one
// workload sees them); all plain policy files together are one more set,
// first.
func loadPolicySets(paths []string) ([][]*policy.Document, error) {
	var sets [][]*policy.Document
	var plain []string
	for _, p := range paths {
		files := []string{p}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			var err error
			if files, err = policytest.Files([]string{p}); err != nil {
				return nil, err
			}
		}
		for _, f := range files {
			if !policytest.IsTestFile(f) {
				plain = append(plain, f)
				continue
			}
			tf, err := policytest.ReadFile(f)
			if err != nil {
				return nil, err
			}
			docs, err := tf.Documents()
			if err != nil {
				return nil, err
			}
			sets = append(sets, docs)
		}
	}
	if len(plain) > 0 {
		docs, err := policy.Load(plain...)
		if err != nil {
			return nil, err
		}
		sets = append([][]*policy.Document{docs}, sets...)
	}
	return sets, nil
}
