// composecheck loads a compose file the way `docker compose` does (compose-go: interpolation,
// env files, profiles, the compose-spec schema, dependency checks) without a Docker engine, and
// prints the services each env file enables with the environment the broker gets.
//
//	composecheck FILE ENV_FILE
package main

import (
	"context"
	"fmt"
	"os"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: composecheck FILE ENV_FILE")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions([]string{os.Args[1]},
		cli.WithEnvFiles(os.Args[2]),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "options:", err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	names := project.ServiceNames()
	sort.Strings(names)
	fmt.Printf("profiles=%v services=%v\n", project.Profiles, names)
	for _, name := range names {
		svc := project.Services[name]
		deps := []string{}
		for d := range svc.DependsOn {
			deps = append(deps, d)
		}
		sort.Strings(deps)
		fmt.Printf("service %s depends_on=%v\n", name, deps)
		keys := []string{}
		for k := range svc.Environment {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := svc.Environment[k]
			if v != nil {
				fmt.Printf("env %s %s=%s\n", name, k, *v)
			}
		}
	}
}
