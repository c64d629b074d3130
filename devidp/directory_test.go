package devidp

import (
	"strings"
	"testing"
)

func TestDefaultDirectory(t *testing.T) {
	d := DefaultDirectory()
	tn := d.tenant(tenantID)
	if tn == nil || d.tenant("contoso-dev.onmicrosoft.com") != tn {
		t.Fatal("the built-in tenant is not found by ID and domain")
	}
	for _, name := range []string{"alice", "bob", "admin"} {
		u := tn.user(name)
		if u == nil || d.password(u) != DefaultPassword {
			t.Errorf("user %s missing or without the default password", name)
		}
	}
	api := tn.resource(apiAppIDURI + "/")
	if api == nil || api.version() != 2 || api.role("Orders.Admin") == nil || len(api.Scopes) != 2 {
		t.Errorf("orders-api: %+v", api)
	}
	if tn.resource(GraphAppIDURI) != &graphApp || tn.resource(GraphClientID) != &graphApp {
		t.Error("the built-in Graph resource is not found")
	}
	if d.groupsLimit() != DefaultGroupsLimit {
		t.Errorf("groups limit %d", d.groupsLimit())
	}
	r := d.redacted()
	if r.Password != "" || r.Tenants[0].Apps[1].Secret != "" || d.Tenants[0].Apps[1].Secret == "" {
		t.Error("redacted keeps a secret, or changed the directory")
	}
}

func TestParseDirectoryErrors(t *testing.T) {
	const tenant = "tenants:\n- id: 3f8d6a2e-5b7c-4e19-9a0d-1c2b3d4e5f60\n  domain: d.example\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty directory"},
		{"no tenants", "groupsLimit: 3\n", "at least one tenant"},
		{"unknown field", "tenant: []\n", "field tenant not found"},
		{"bad tenant id", "tenants:\n- {id: nope, domain: d}\n", `tenants[0].id: "nope" is not a GUID`},
		{"no domain", "tenants:\n- {id: 3f8d6a2e-5b7c-4e19-9a0d-1c2b3d4e5f60}\n", "tenants[0].domain: required"},
		{"negative limit", "groupsLimit: -1\n" + tenant, "groupsLimit"},
		{"duplicate GUID", tenant + "  groups:\n  - {name: g, id: 3f8d6a2e-5b7c-4e19-9a0d-1c2b3d4e5f60}\n", "already used by tenants[0].id"},
		{"unknown group", tenant + "  users:\n  - {name: a, oid: 00000000-0000-4000-8000-000000000001, groups: [g]}\n", `no group "g"`},
		{"bad user name", tenant + "  users:\n  - {name: a b, oid: 00000000-0000-4000-8000-000000000001}\n", "not a sign-in name"},
		{"duplicate user", tenant + "  users:\n  - {name: a, oid: 00000000-0000-4000-8000-000000000001}\n  - {name: a, oid: 00000000-0000-4000-8000-000000000002}\n", `duplicate user "a"`},
		{"too many extra groups", tenant + "  users:\n  - {name: a, oid: 00000000-0000-4000-8000-000000000001, extraGroups: 100000}\n", "extraGroups"},
		{"bad version", tenant + "  apps:\n  - {name: x, clientId: 00000000-0000-4000-8000-000000000001, objectId: 00000000-0000-4000-8000-000000000002, accessTokenAcceptedVersion: 3}\n", "not 1 or 2"},
		{"app named graph", tenant + "  apps:\n  - {name: graph, clientId: 00000000-0000-4000-8000-000000000001, objectId: 00000000-0000-4000-8000-000000000002}\n", `"graph" is taken`},
		{"unknown role", tenant + "  apps:\n  - {name: x, clientId: 00000000-0000-4000-8000-000000000001, objectId: 00000000-0000-4000-8000-000000000002, applicationPermissions: {x: [R]}}\n", `defines no app role "R"`},
		{"user role for apps", tenant + "  apps:\n  - name: x\n    clientId: 00000000-0000-4000-8000-000000000001\n    objectId: 00000000-0000-4000-8000-000000000002\n    appRoles: [{value: R, allowedMemberTypes: [User]}]\n    applicationPermissions: {x: [R]}\n", "is not for Application members"},
		{"unexposed scope", tenant + "  apps:\n  - {name: x, clientId: 00000000-0000-4000-8000-000000000001, objectId: 00000000-0000-4000-8000-000000000002, delegatedPermissions: {x: [S]}}\n", `exposes no scope "S"`},
		{"bad scope", tenant + "  apps:\n  - {name: x, clientId: 00000000-0000-4000-8000-000000000001, objectId: 00000000-0000-4000-8000-000000000002, scopes: [a/b]}\n", "is not a scope name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDirectory("dir.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "dir.yaml") {
				t.Errorf("error %v, want one naming dir.yaml and containing %q", err, tc.want)
			}
		})
	}
}

func FuzzParseDirectory(f *testing.F) {
	f.Add(string(defaultDirectory))
	f.Add("tenants:\n- {id: 3f8d6a2e-5b7c-4e19-9a0d-1c2b3d4e5f60, domain: d}\n")
	f.Add("tenants: [{id: x}]\n")
	f.Add("a: &a [*a]\n")
	f.Fuzz(func(t *testing.T, data string) {
		d, err := ParseDirectory("fuzz.yaml", []byte(data))
		if err != nil {
			return
		}
		// Every user's groups of a valid directory resolve.
		for _, tn := range d.Tenants {
			for _, u := range tn.Users {
				u.groupIDs(&tn)
			}
		}
	})
}
