// Command cfplugin plays the cf CLI's side of the plugin RPC, with Go's standard library only
// (net/rpc, encoding/gob), to test switchctl as a cf CLI plugin with a codec that is not ours.
//
// The server registers a CliRpcCmd with the method names, argument and reply types of
// cloudfoundry/cli plugin/rpc/cli_rpc_server.go (commit ccfd649d), and launches the plugin as
// plugin/rpc/run_plugin.go and command/plugin/shared/rpc.go do: `PLUGIN PORT SendMetadata` to
// fetch the metadata, `PLUGIN PORT COMMAND ARGS...` to run a command, the plugin's stdout and
// stderr being the CLI's own.
//
//	cfplugin metadata [flags] PLUGIN        checks the metadata field by field, prints it as JSON
//	cfplugin run [flags] PLUGIN ARGS...     answers the session calls; exits with the plugin's code
//	cfplugin echo < gob > gob               decodes the RPC's types and encodes them back
//	cfplugin fixture NAME > gob             one value, as the fixtures of switchctl's gob tests
package main

import (
	"encoding/gob"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"cfplugin/plugin"
	"cfplugin/plugin_models"
)

// Session is what the CLI reports to the plugin.
type Session struct {
	CliVersion  string
	API         string
	FirstToken  string
	Token       string
	TokenError  string
	OrgGUID     string
	OrgName     string
	SpaceGUID   string
	SpaceName   string
	SSLDisabled bool
	FailMethods map[string]bool
}

// CliRpcCmd answers as the cf CLI's does; every call is recorded.
type CliRpcCmd struct {
	session  Session
	mu       sync.Mutex
	calls    []string
	metadata *plugin.PluginMetadata
	tokens   int
}

func (cmd *CliRpcCmd) record(method string) error {
	cmd.mu.Lock()
	defer cmd.mu.Unlock()
	cmd.calls = append(cmd.calls, method)
	if cmd.session.FailMethods[method] {
		return errors.New(method + " failed (test)")
	}
	return nil
}

// parseVersion reads MAJOR.MINOR.PATCH (the CLI uses blang/semver; plain versions suffice here).
func parseVersion(v string) ([3]int, error) {
	var out [3]int
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, fmt.Errorf("No Major.Minor.Patch elements found")
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return out, err
		}
		out[i] = n
	}
	return out, nil
}

func (cmd *CliRpcCmd) IsMinCliVersion(passedVersion string, retVal *bool) error {
	if err := cmd.record("IsMinCliVersion"); err != nil {
		return err
	}
	actual, err := parseVersion(cmd.session.CliVersion)
	if err != nil {
		return err
	}
	required, err := parseVersion(passedVersion)
	if err != nil {
		return err
	}
	*retVal = true
	for i := 0; i < 3; i++ {
		if actual[i] != required[i] {
			*retVal = actual[i] > required[i]
			break
		}
	}
	return nil
}

func (cmd *CliRpcCmd) SetPluginMetadata(pluginMetadata plugin.PluginMetadata, retVal *bool) error {
	if err := cmd.record("SetPluginMetadata"); err != nil {
		return err
	}
	cmd.mu.Lock()
	defer cmd.mu.Unlock()
	cmd.metadata = &pluginMetadata
	*retVal = true
	return nil
}

func (cmd *CliRpcCmd) GetCurrentOrg(args string, retVal *plugin_models.Organization) error {
	if err := cmd.record("GetCurrentOrg"); err != nil {
		return err
	}
	retVal.Name = cmd.session.OrgName
	retVal.Guid = cmd.session.OrgGUID
	return nil
}

func (cmd *CliRpcCmd) GetCurrentSpace(args string, retVal *plugin_models.Space) error {
	if err := cmd.record("GetCurrentSpace"); err != nil {
		return err
	}
	retVal.Name = cmd.session.SpaceName
	retVal.Guid = cmd.session.SpaceGUID
	return nil
}

func (cmd *CliRpcCmd) IsSSLDisabled(args string, retVal *bool) error {
	if err := cmd.record("IsSSLDisabled"); err != nil {
		return err
	}
	*retVal = cmd.session.SSLDisabled
	return nil
}

func (cmd *CliRpcCmd) ApiEndpoint(args string, retVal *string) error {
	if err := cmd.record("ApiEndpoint"); err != nil {
		return err
	}
	*retVal = cmd.session.API
	return nil
}

// AccessToken: the CLI refreshes the token on every call (RefreshAuthToken); here the first
// answer may be a stale token, the later ones the fresh one.
func (cmd *CliRpcCmd) AccessToken(args string, retVal *string) error {
	if err := cmd.record("AccessToken"); err != nil {
		return err
	}
	cmd.mu.Lock()
	defer cmd.mu.Unlock()
	cmd.tokens++
	if cmd.session.TokenError != "" {
		return errors.New(cmd.session.TokenError)
	}
	if cmd.tokens == 1 && cmd.session.FirstToken != "" {
		*retVal = cmd.session.FirstToken
	} else {
		*retVal = cmd.session.Token
	}
	return nil
}

// serve starts the RPC server on 127.0.0.1:0 as CliRpcService.Start does: one ServeConn per
// connection.
func serve(cmd *CliRpcCmd) (net.Listener, error) {
	server := rpc.NewServer()
	if err := server.Register(cmd); err != nil {
		return nil, err
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go server.ServeConn(conn)
		}
	}()
	return listener, nil
}

func launch(listener net.Listener, path string, args ...string) (int, error) {
	port := strconv.Itoa(listener.Addr().(*net.TCPAddr).Port)
	c := exec.Command(path, append([]string{port}, args...)...)
	c.Stdin = os.Stdin
	c.Stdout = os.Stdout
	c.Stderr = os.Stderr
	err := c.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "cfplugin: "+format+"\n", args...)
	os.Exit(3)
}

func versionString(v plugin.VersionType) string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Build)
}

func metadataMode(args []string) {
	fs := flag.NewFlagSet("metadata", flag.ExitOnError)
	wantName := fs.String("want-name", "", "expected Name")
	wantVersion := fs.String("want-version", "", "expected Version")
	wantMin := fs.String("want-min-cli-version", "", "expected MinCliVersion")
	wantCommand := fs.String("want-command", "", "expected name of the one command")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fail("metadata: give the plugin's path")
	}
	cmd := &CliRpcCmd{}
	listener, err := serve(cmd)
	if err != nil {
		fail("%v", err)
	}
	defer listener.Close()
	code, err := launch(listener, fs.Arg(0), "SendMetadata")
	if err != nil || code != 0 {
		fail("the plugin's SendMetadata run failed: code %d, %v", code, err)
	}
	m := cmd.metadata
	if m == nil {
		fail("the plugin exited 0 without calling SetPluginMetadata")
	}
	var problems []string
	check := func(what, got, want string) {
		if got != want {
			problems = append(problems, fmt.Sprintf("%s: got %q, want %q", what, got, want))
		}
	}
	check("Name", m.Name, *wantName)
	check("Version", versionString(m.Version), *wantVersion)
	check("MinCliVersion", versionString(m.MinCliVersion), *wantMin)
	check("LibraryVersion", versionString(m.LibraryVersion), "0.0.0")
	if len(m.Commands) != 1 {
		problems = append(problems, fmt.Sprintf("Commands: %d, want 1", len(m.Commands)))
	} else {
		c := m.Commands[0]
		check("Commands[0].Name", c.Name, *wantCommand)
		check("Commands[0].Alias", c.Alias, "")
		if c.HelpText == "" {
			problems = append(problems, "Commands[0].HelpText is empty")
		}
		if !strings.Contains(c.UsageDetails.Usage, "cf "+*wantCommand+" ") {
			problems = append(problems, "Commands[0].UsageDetails.Usage does not show `cf "+*wantCommand+" …`")
		}
		if len(c.UsageDetails.Options) == 0 {
			problems = append(problems, "Commands[0].UsageDetails.Options is empty")
		}
		for name, help := range c.UsageDetails.Options {
			if strings.HasPrefix(name, "-") || help == "" {
				problems = append(problems, fmt.Sprintf("option %q: a name without dashes and a description (%q)", name, help))
			}
		}
	}
	if len(problems) > 0 {
		fail("metadata:\n  %s", strings.Join(problems, "\n  "))
	}
	json.NewEncoder(os.Stdout).Encode(m)
}

func runMode(args []string) {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	s := Session{FailMethods: map[string]bool{}}
	fs.StringVar(&s.CliVersion, "cli-version", "8.7.0", "the CLI's version for IsMinCliVersion")
	fs.StringVar(&s.API, "api", "", "ApiEndpoint")
	fs.StringVar(&s.FirstToken, "first-token", "", "the first AccessToken answer")
	fs.StringVar(&s.Token, "token", "", "AccessToken")
	fs.StringVar(&s.TokenError, "token-error", "", "AccessToken's error, if set")
	fs.StringVar(&s.OrgGUID, "org-guid", "", "GetCurrentOrg's Guid")
	fs.StringVar(&s.OrgName, "org-name", "", "GetCurrentOrg's Name")
	fs.StringVar(&s.SpaceGUID, "space-guid", "", "GetCurrentSpace's Guid")
	fs.StringVar(&s.SpaceName, "space-name", "", "GetCurrentSpace's Name")
	fs.BoolVar(&s.SSLDisabled, "ssl-disabled", false, "IsSSLDisabled")
	fail_ := fs.String("fail", "", "comma-separated methods that answer an error")
	calls := fs.String("calls", "", "file to write the methods called to, one a line")
	fs.Parse(args)
	for _, m := range strings.Split(*fail_, ",") {
		if m != "" {
			s.FailMethods[m] = true
		}
	}
	if fs.NArg() < 1 {
		fail("run: give the plugin's path and its arguments")
	}
	cmd := &CliRpcCmd{session: s}
	listener, err := serve(cmd)
	if err != nil {
		fail("%v", err)
	}
	code, err := launch(listener, fs.Arg(0), fs.Args()[1:]...)
	listener.Close()
	if err != nil {
		fail("launch: %v", err)
	}
	if *calls != "" {
		cmd.mu.Lock()
		text := strings.Join(cmd.calls, "\n")
		cmd.mu.Unlock()
		if err := os.WriteFile(*calls, []byte(text), 0o600); err != nil {
			fail("%v", err)
		}
	}
	os.Exit(code)
}

// Request and Response are net/rpc's, without the unexported next field.
type Request struct {
	ServiceMethod string
	Seq           uint64
}

type Response struct {
	ServiceMethod string
	Seq           uint64
	Error         string
}

// echoOrder is the order of the values in the echo stream: every type the plugin encodes
// (Request, string, PluginMetadata) or decodes (Response, string, bool, Organization, Space).
func echoValues() []interface{} {
	return []interface{}{
		new(Request), new(string), new(plugin.PluginMetadata),
		new(Response), new(string), new(bool), new(bool),
		new(plugin_models.Organization), new(plugin_models.Space),
	}
}

func echoMode() {
	dec := gob.NewDecoder(os.Stdin)
	enc := gob.NewEncoder(os.Stdout)
	for i, v := range echoValues() {
		if err := dec.Decode(v); err != nil {
			fail("echo: value %d (%T): %v", i, v, err)
		}
		if err := enc.Encode(v); err != nil {
			fail("echo: value %d (%T): %v", i, v, err)
		}
	}
}

func fixtureValue(name string) interface{} {
	metadata := plugin.PluginMetadata{
		Name:          "maintenance",
		Version:       plugin.VersionType{Major: 1, Minor: 2, Build: 300},
		MinCliVersion: plugin.VersionType{Major: 7},
		Commands: []plugin.Command{{
			Name:     "maintenance",
			HelpText: "Switch routes",
			UsageDetails: plugin.Usage{
				Usage:   "cf maintenance on APP",
				Options: map[string]string{"json": "JSON lines"},
			},
		}},
	}
	switch name {
	case "string_empty":
		return ""
	case "string":
		return "bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln"
	case "bool_true":
		return true
	case "bool_false":
		return false
	case "int":
		return -129
	case "uint":
		return uint64(256)
	case "request":
		return Request{ServiceMethod: "CliRpcCmd.AccessToken", Seq: 300}
	case "response_error":
		return Response{ServiceMethod: "CliRpcCmd.AccessToken", Error: "refresh failed"}
	case "metadata":
		return metadata
	case "organization":
		var org plugin_models.Organization
		org.Guid, org.Name = "5a1e0000-aaaa-4bbb-8ccc-000000000001", "org"
		org.QuotaDefinition = plugin_models.QuotaFields{MemoryLimit: 10240, RoutesLimit: -1, NonBasicServicesAllowed: true}
		return org
	case "space":
		var space plugin_models.Space
		space.Guid, space.Name = "5a1e0000-aaaa-4bbb-8ccc-000000000002", "dev"
		return space
	case "strings":
		return []string{"a", "", "b"}
	case "map":
		return map[string]string{"k": "v"}
	case "empty_struct":
		// net/rpc's invalidRequest, the body of an error response.
		return struct{}{}
	}
	fail("unknown fixture %q", name)
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: cfplugin metadata|run|echo|fixture ...")
	}
	switch os.Args[1] {
	case "metadata":
		metadataMode(os.Args[2:])
	case "run":
		runMode(os.Args[2:])
	case "echo":
		echoMode()
	case "fixture":
		if len(os.Args) != 3 {
			fail("fixture NAME")
		}
		// Two values on one stream: the second shows that definitions are sent once.
		if os.Args[2] == "call" {
			enc := gob.NewEncoder(os.Stdout)
			enc.Encode(Request{ServiceMethod: "CliRpcCmd.SetPluginMetadata"})
			enc.Encode(fixtureValue("metadata"))
			return
		}
		if err := gob.NewEncoder(os.Stdout).Encode(fixtureValue(os.Args[2])); err != nil {
			fail("%v", err)
		}
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
