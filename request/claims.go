package request

import (
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strings"
)

// Claims are the verified claims of a token (request.auth.claims): names
// to decoded JSON values (string, json.Number, bool, nil, []any and
// map[string]any). A Claims is read-only once made; its zero value holds
// no claim. It takes less memory than a map, which matters for the
// identities a verified-token cache keeps.
type Claims struct {
	list []Claim // sorted by name, names unique
}

// Claim is one claim.
type Claim struct {
	Name  string
	Value any
}

// MakeClaims returns the Claims of list, which it sorts by name and keeps.
// A name must not appear twice.
func MakeClaims(list []Claim) (Claims, error) {
	slices.SortFunc(list, func(a, b Claim) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(list); i++ {
		if list[i].Name == list[i-1].Name {
			return Claims{}, fmt.Errorf("request: claim %q appears twice", list[i].Name)
		}
	}
	return Claims{list: slices.Clip(list)}, nil
}

// ClaimsOf returns the Claims of m.
func ClaimsOf(m map[string]any) Claims {
	list := make([]Claim, 0, len(m))
	for name, v := range m {
		list = append(list, Claim{name, v})
	}
	c, _ := MakeClaims(list) // map keys are unique
	return c
}

// Get returns the claim called name.
func (c Claims) Get(name string) (any, bool) {
	if len(c.list) <= 8 {
		for i := range c.list {
			if c.list[i].Name == name {
				return c.list[i].Value, true
			}
		}
		return nil, false
	}
	i, ok := slices.BinarySearchFunc(c.list, name, func(e Claim, name string) int { return strings.Compare(e.Name, name) })
	if !ok {
		return nil, false
	}
	return c.list[i].Value, true
}

// String returns the claim called name when it is a string, else "".
func (c Claims) String(name string) string {
	v, _ := c.Get(name)
	s, _ := v.(string)
	return s
}

// Len returns the number of claims.
func (c Claims) Len() int { return len(c.list) }

// All yields the claims in the order of their names.
func (c Claims) All() iter.Seq2[string, any] {
	return func(yield func(string, any) bool) {
		for _, e := range c.list {
			if !yield(e.Name, e.Value) {
				return
			}
		}
	}
}

// Map returns the claims as a new map.
func (c Claims) Map() map[string]any {
	m := make(map[string]any, len(c.list))
	for _, e := range c.list {
		m[e.Name] = e.Value
	}
	return m
}

// MarshalJSON encodes the claims as a JSON object, names in order.
func (c Claims) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, e := range c.list {
		if i > 0 {
			b = append(b, ',')
		}
		name, err := json.Marshal(e.Name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.Value)
		if err != nil {
			return nil, fmt.Errorf("claim %q: %w", e.Name, err)
		}
		b = append(append(append(b, name...), ':'), v...)
	}
	return append(b, '}'), nil
}
