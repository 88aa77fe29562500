// Package plugin_models holds the reply types of GetCurrentOrg and GetCurrentSpace, copied from
// cloudfoundry/cli plugin/models/get_current_org.go and get_current_space.go (commit ccfd649d).
package plugin_models

type Organization struct {
	OrganizationFields
}

type OrganizationFields struct {
	Guid            string
	Name            string
	QuotaDefinition QuotaFields
}

type QuotaFields struct {
	Guid                    string
	Name                    string
	MemoryLimit             int64
	InstanceMemoryLimit     int64
	RoutesLimit             int
	ServicesLimit           int
	NonBasicServicesAllowed bool
}

type Space struct {
	SpaceFields
}

type SpaceFields struct {
	Guid string
	Name string
}
