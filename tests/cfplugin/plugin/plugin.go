// Package plugin holds the types of the cf CLI's plugin RPC that go over the wire, copied from
// cloudfoundry/cli plugin/plugin.go (commit ccfd649d). The package is named plugin, as there, so
// that gob names the unnamed types as the cf CLI does ("[]plugin.Command").
package plugin

type VersionType struct {
	Major int
	Minor int
	Build int
}

type PluginMetadata struct {
	Name           string
	Version        VersionType
	LibraryVersion VersionType
	MinCliVersion  VersionType
	Commands       []Command
}

type Usage struct {
	Usage   string
	Options map[string]string
}

type Command struct {
	Name         string
	Alias        string
	HelpText     string
	UsageDetails Usage // Detail usage to be displayed in `cf help <cmd>`
}
