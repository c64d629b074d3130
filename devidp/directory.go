package devidp

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultGroupsLimit is the most groups a token lists before it carries
// the overage form instead, as Entra ID does for JWTs.
const DefaultGroupsLimit = 200

// DefaultPassword is the password of users when neither they nor the
// directory set one.
const DefaultPassword = "dev"

// maxDirectorySize bounds a directory file.
const maxDirectorySize = 4 << 20

// GraphAppName is the name under which every tenant knows the built-in
// Microsoft Graph resource, for applicationPermissions.
const GraphAppName = "graph"

// Microsoft Graph's well-known identifiers, as Entra ID uses them.
const (
	GraphClientID = "00000003-0000-0000-c000-000000000000"
	GraphAppIDURI = "https://graph.microsoft.com"
)

// A Directory is what the identity provider knows: tenants with their
// users, groups and app registrations.
type Directory struct {
	// GroupsLimit is the most groups a token lists; a user in more gets
	// the overage form (_claim_names/_claim_sources, no groups). Zero
	// means DefaultGroupsLimit.
	GroupsLimit int `yaml:"groupsLimit" json:"groupsLimit,omitempty"`
	// Password is the password of users who have none of their own
	// (default DefaultPassword).
	Password string   `yaml:"password" json:"password,omitempty"`
	Tenants  []Tenant `yaml:"tenants" json:"tenants,omitempty"`
}

// A Tenant is one Entra ID tenant (directory).
type Tenant struct {
	// ID is the tenant GUID (the tid claim).
	ID string `yaml:"id" json:"id,omitempty"`
	// Domain is the tenant's primary domain; users' UPNs end with it.
	Domain string  `yaml:"domain" json:"domain,omitempty"`
	Groups []Group `yaml:"groups" json:"groups,omitempty"`
	Users  []User  `yaml:"users" json:"users,omitempty"`
	Apps   []App   `yaml:"apps" json:"apps,omitempty"`
}

// A Group is a security group.
type Group struct {
	Name string `yaml:"name" json:"name,omitempty"`
	ID   string `yaml:"id" json:"id,omitempty"`
}

// A User is a member of a tenant.
type User struct {
	// Name is the sign-in name ("alice"); the UPN is Name@Domain unless
	// UPN is set.
	Name        string `yaml:"name" json:"name,omitempty"`
	DisplayName string `yaml:"displayName" json:"displayName,omitempty"`
	UPN         string `yaml:"upn" json:"upn,omitempty"`
	// OID is the user's object ID (the oid claim).
	OID      string `yaml:"oid" json:"oid,omitempty"`
	Password string `yaml:"password" json:"password,omitempty"`
	// Groups are group names (or object IDs) the user is a member of.
	Groups []string `yaml:"groups" json:"groups,omitempty"`
	// ExtraGroups adds this many generated group memberships, to try the
	// groups overage form without listing hundreds of groups.
	ExtraGroups int `yaml:"extraGroups" json:"extraGroups,omitempty"`
	// AppRoles are app role assignments: API app name → role values.
	AppRoles map[string][]string `yaml:"appRoles" json:"appRoles,omitempty"`
}

// An App is an app registration: an API other apps get tokens for, a
// client that gets them, or both.
type App struct {
	// Name is how the directory, the CLI and the sign-in page refer to
	// the app.
	Name string `yaml:"name" json:"name,omitempty"`
	// ClientID is the application (client) ID.
	ClientID string `yaml:"clientId" json:"clientId,omitempty"`
	// ObjectID is the object ID of the app's service principal: the oid
	// and sub of its app-only tokens.
	ObjectID string `yaml:"objectId" json:"objectId,omitempty"`
	// AppIDURI is the API's Application ID URI ("api://orders"); tokens
	// may be asked for with it or with the client ID.
	AppIDURI string `yaml:"appIdUri" json:"appIdUri,omitempty"`
	// Secret is the client secret; an app without one is a public client
	// (authorization code with PKCE, password grant).
	Secret string `yaml:"secret" json:"secret,omitempty"`
	// RedirectURIs are where the authorize endpoint may send codes and
	// the end-session endpoint may send the browser.
	RedirectURIs []string `yaml:"redirectUris" json:"redirectUris,omitempty"`
	// AccessTokenAcceptedVersion is the version of the access tokens
	// issued for this API: 1 (also when 0, as Entra's null) or 2.
	AccessTokenAcceptedVersion int `yaml:"accessTokenAcceptedVersion" json:"accessTokenAcceptedVersion,omitempty"`
	// GroupMembershipClaims, when "SecurityGroup" or "All", puts the
	// groups claim in tokens for this API.
	GroupMembershipClaims string `yaml:"groupMembershipClaims" json:"groupMembershipClaims,omitempty"`
	// Scopes are the delegated permissions the API exposes.
	Scopes []string `yaml:"scopes" json:"scopes,omitempty"`
	// AppRoles are the roles the API defines.
	AppRoles []AppRole `yaml:"appRoles" json:"appRoles,omitempty"`
	// ApplicationPermissions are the app roles this client was granted
	// on other APIs (app name → role values): the roles of its app-only
	// tokens.
	ApplicationPermissions map[string][]string `yaml:"applicationPermissions" json:"applicationPermissions,omitempty"`
	// DelegatedPermissions are the scopes consented for this client on
	// other APIs (app name → scopes): what "/.default" stands for in a
	// delegated request.
	DelegatedPermissions map[string][]string `yaml:"delegatedPermissions" json:"delegatedPermissions,omitempty"`
}

// An AppRole is a role an API defines.
type AppRole struct {
	Value string `yaml:"value" json:"value,omitempty"`
	// AllowedMemberTypes are "User" and/or "Application".
	AllowedMemberTypes []string `yaml:"allowedMemberTypes" json:"allowedMemberTypes,omitempty"`
}

//go:embed default.yaml
var defaultDirectory []byte

// DefaultDirectory returns the built-in directory: one tenant with users
// alice, bob and admin, the admins and employees groups, the orders-api
// API with roles and scopes, and the orders-client, orders-ops and idgate
// clients.
func DefaultDirectory() *Directory {
	d, err := ParseDirectory("default.yaml", defaultDirectory)
	if err != nil {
		// The embedded file is part of the program and tested.
		panic(fmt.Sprintf("devidp: built-in directory: %v", err))
	}
	return d
}

// DefaultDirectoryYAML returns the built-in directory's YAML, a starting
// point for a directory file of one's own.
func DefaultDirectoryYAML() []byte { return slices.Clone(defaultDirectory) }

// LoadDirectory reads a directory YAML file.
func LoadDirectory(path string) (*Directory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDirectorySize+1))
	if err != nil {
		return nil, fmt.Errorf("devidp: read %s: %w", path, err)
	}
	if len(data) > maxDirectorySize {
		return nil, fmt.Errorf("devidp: %s: larger than %d bytes", path, maxDirectorySize)
	}
	return ParseDirectory(path, data)
}

// ParseDirectory parses and validates a directory; file names it in
// errors.
func ParseDirectory(file string, data []byte) (*Directory, error) {
	var d Directory
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("devidp: %s: empty directory", file)
		}
		return nil, fmt.Errorf("devidp: %s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("devidp: %s: %w", file, err)
	}
	return &d, nil
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// maxExtraGroups bounds generated group memberships.
const maxExtraGroups = 10000

func (d *Directory) validate() error {
	if d.GroupsLimit < 0 {
		return errors.New("groupsLimit: must not be negative")
	}
	if len(d.Tenants) == 0 {
		return errors.New("tenants: at least one tenant is required")
	}
	seen := map[string]string{} // GUID → where it is used
	guid := func(where, v string) error {
		if !guidRE.MatchString(v) {
			return fmt.Errorf("%s: %q is not a GUID", where, v)
		}
		k := strings.ToLower(v)
		if prev, ok := seen[k]; ok {
			return fmt.Errorf("%s: %s is already used by %s", where, v, prev)
		}
		seen[k] = where
		return nil
	}
	for ti := range d.Tenants {
		t := &d.Tenants[ti]
		tw := fmt.Sprintf("tenants[%d]", ti)
		if err := guid(tw+".id", t.ID); err != nil {
			return err
		}
		if t.Domain == "" {
			return fmt.Errorf("%s.domain: required", tw)
		}
		groups := map[string]bool{}
		for gi, g := range t.Groups {
			gw := fmt.Sprintf("%s.groups[%d]", tw, gi)
			if g.Name == "" {
				return fmt.Errorf("%s.name: required", gw)
			}
			if groups[g.Name] {
				return fmt.Errorf("%s.name: duplicate group %q", gw, g.Name)
			}
			if err := guid(gw+".id", g.ID); err != nil {
				return err
			}
			groups[g.Name], groups[strings.ToLower(g.ID)] = true, true
		}
		apps := map[string]*App{}
		for ai := range t.Apps {
			a := &t.Apps[ai]
			aw := fmt.Sprintf("%s.apps[%d]", tw, ai)
			if a.Name == "" {
				return fmt.Errorf("%s.name: required", aw)
			}
			if a.Name == GraphAppName || apps[a.Name] != nil {
				return fmt.Errorf("%s.name: %q is taken", aw, a.Name)
			}
			apps[a.Name] = a
			if err := guid(aw+".clientId", a.ClientID); err != nil {
				return err
			}
			if err := guid(aw+".objectId", a.ObjectID); err != nil {
				return err
			}
			switch a.AccessTokenAcceptedVersion {
			case 0, 1, 2:
			default:
				return fmt.Errorf("%s.accessTokenAcceptedVersion: %d is not 1 or 2", aw, a.AccessTokenAcceptedVersion)
			}
			switch a.GroupMembershipClaims {
			case "", "None", "SecurityGroup", "All":
			default:
				return fmt.Errorf("%s.groupMembershipClaims: %q is not None, SecurityGroup or All", aw, a.GroupMembershipClaims)
			}
			for _, s := range a.Scopes {
				if s == "" || strings.ContainsAny(s, " /") || s == ".default" {
					return fmt.Errorf("%s.scopes: %q is not a scope name", aw, s)
				}
			}
			for ri, r := range a.AppRoles {
				if r.Value == "" || strings.Contains(r.Value, " ") {
					return fmt.Errorf("%s.appRoles[%d].value: %q is not a role value", aw, ri, r.Value)
				}
				for _, m := range r.AllowedMemberTypes {
					if m != "User" && m != "Application" {
						return fmt.Errorf("%s.appRoles[%d].allowedMemberTypes: %q is not User or Application", aw, ri, m)
					}
				}
			}
		}
		for ai := range t.Apps {
			a := &t.Apps[ai]
			aw := fmt.Sprintf("%s.apps[%d]", tw, ai)
			for api, roles := range a.ApplicationPermissions {
				if err := checkGrant(t, api, roles, "Application", aw+".applicationPermissions"); err != nil {
					return err
				}
			}
			for api, scopes := range a.DelegatedPermissions {
				target := t.app(api)
				if target == nil {
					return fmt.Errorf("%s.delegatedPermissions: no app named %q", aw, api)
				}
				for _, s := range scopes {
					if !slices.Contains(target.Scopes, s) {
						return fmt.Errorf("%s.delegatedPermissions: %s exposes no scope %q", aw, api, s)
					}
				}
			}
		}
		names := map[string]bool{}
		for ui := range t.Users {
			u := &t.Users[ui]
			uw := fmt.Sprintf("%s.users[%d]", tw, ui)
			if u.Name == "" || strings.ContainsAny(u.Name, " @/") {
				return fmt.Errorf("%s.name: %q is not a sign-in name", uw, u.Name)
			}
			if names[u.Name] {
				return fmt.Errorf("%s.name: duplicate user %q", uw, u.Name)
			}
			names[u.Name] = true
			if err := guid(uw+".oid", u.OID); err != nil {
				return err
			}
			for _, g := range u.Groups {
				if !groups[g] && !groups[strings.ToLower(g)] {
					return fmt.Errorf("%s.groups: no group %q in the tenant", uw, g)
				}
			}
			if u.ExtraGroups < 0 || u.ExtraGroups > maxExtraGroups {
				return fmt.Errorf("%s.extraGroups: %d is not between 0 and %d", uw, u.ExtraGroups, maxExtraGroups)
			}
			for api, roles := range u.AppRoles {
				if err := checkGrant(t, api, roles, "User", uw+".appRoles"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkGrant checks that roles are roles api defines for memberType.
func checkGrant(t *Tenant, api string, roles []string, memberType, where string) error {
	target := t.app(api)
	if target == nil {
		return fmt.Errorf("%s: no app named %q", where, api)
	}
	for _, r := range roles {
		def := target.role(r)
		if def == nil {
			return fmt.Errorf("%s: %s defines no app role %q", where, api, r)
		}
		if !slices.Contains(def.AllowedMemberTypes, memberType) {
			return fmt.Errorf("%s: app role %s of %s is not for %s members", where, r, api, memberType)
		}
	}
	return nil
}

// graphApp is the built-in Microsoft Graph resource every tenant has.
var graphApp = App{
	Name:                       GraphAppName,
	ClientID:                   GraphClientID,
	AppIDURI:                   GraphAppIDURI,
	AccessTokenAcceptedVersion: 1,
	Scopes:                     []string{"User.Read", "GroupMember.Read.All"},
	AppRoles: []AppRole{
		{Value: "GroupMember.Read.All", AllowedMemberTypes: []string{"Application"}},
		{Value: "Directory.Read.All", AllowedMemberTypes: []string{"Application"}},
		{Value: "User.Read.All", AllowedMemberTypes: []string{"Application"}},
	},
}

// app returns the app named name (the built-in graph included), or nil.
func (t *Tenant) app(name string) *App {
	if name == GraphAppName {
		return &graphApp
	}
	for i := range t.Apps {
		if t.Apps[i].Name == name {
			return &t.Apps[i]
		}
	}
	return nil
}

// appByClientID returns the app with this client ID, or nil.
func (t *Tenant) appByClientID(id string) *App {
	for i := range t.Apps {
		if strings.EqualFold(t.Apps[i].ClientID, id) {
			return &t.Apps[i]
		}
	}
	return nil
}

// resource returns the API a resource identifier names: its client ID
// or App ID URI, with or without a trailing slash.
func (t *Tenant) resource(id string) *App {
	id = strings.TrimSuffix(id, "/")
	if id == "" {
		return nil
	}
	if id == GraphClientID || id == GraphAppIDURI {
		return &graphApp
	}
	for i := range t.Apps {
		a := &t.Apps[i]
		if strings.EqualFold(a.ClientID, id) || (a.AppIDURI != "" && strings.TrimSuffix(a.AppIDURI, "/") == id) {
			return a
		}
	}
	return nil
}

// user returns the user with this sign-in name, UPN or object ID, or nil.
func (t *Tenant) user(name string) *User {
	for i := range t.Users {
		u := &t.Users[i]
		if u.Name == name || strings.EqualFold(u.upn(t), name) || strings.EqualFold(u.OID, name) {
			return u
		}
	}
	return nil
}

func (u *User) upn(t *Tenant) string {
	if u.UPN != "" {
		return u.UPN
	}
	return u.Name + "@" + t.Domain
}

func (u *User) displayName() string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Name
}

// groupIDs returns the object IDs of the user's groups, generated ones
// included.
func (u *User) groupIDs(t *Tenant) []string {
	ids := make([]string, 0, len(u.Groups)+u.ExtraGroups)
	for _, g := range u.Groups {
		for _, tg := range t.Groups {
			if tg.Name == g || strings.EqualFold(tg.ID, g) {
				ids = append(ids, tg.ID)
				break
			}
		}
	}
	for i := range u.ExtraGroups {
		ids = append(ids, generatedGroupID(u.OID, i))
	}
	return ids
}

// generatedGroupID is the ID of the i-th generated group of a user: the
// user's object ID with its last 8 hex digits replaced by i.
func generatedGroupID(oid string, i int) string {
	return fmt.Sprintf("%s%08x", oid[:len(oid)-8], i)
}

// role returns the app role with this value, or nil.
func (a *App) role(value string) *AppRole {
	for i := range a.AppRoles {
		if a.AppRoles[i].Value == value {
			return &a.AppRoles[i]
		}
	}
	return nil
}

func (a *App) version() int {
	if a.AccessTokenAcceptedVersion == 2 {
		return 2
	}
	return 1
}

func (a *App) emitsGroups() bool {
	return a.GroupMembershipClaims == "SecurityGroup" || a.GroupMembershipClaims == "All"
}

// redirectAllowed reports whether uri is one of the app's redirect URIs.
func (a *App) redirectAllowed(uri string) bool {
	return uri != "" && slices.Contains(a.RedirectURIs, uri)
}

func (d *Directory) groupsLimit() int {
	if d.GroupsLimit == 0 {
		return DefaultGroupsLimit
	}
	return d.GroupsLimit
}

func (d *Directory) password(u *User) string {
	switch {
	case u.Password != "":
		return u.Password
	case d.Password != "":
		return d.Password
	}
	return DefaultPassword
}

// tenant returns the tenant with this GUID or domain, or nil.
func (d *Directory) tenant(id string) *Tenant {
	for i := range d.Tenants {
		t := &d.Tenants[i]
		if strings.EqualFold(t.ID, id) || strings.EqualFold(t.Domain, id) {
			return t
		}
	}
	return nil
}

// clientTenant returns the tenant that registered a client ID, or nil.
func (d *Directory) clientTenant(clientID string) *Tenant {
	for i := range d.Tenants {
		if d.Tenants[i].appByClientID(clientID) != nil {
			return &d.Tenants[i]
		}
	}
	return nil
}
