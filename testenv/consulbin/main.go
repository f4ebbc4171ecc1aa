// Command consulbin is a Consul server built from the Consul Go module, used
// only by meshnet's tests (Consul is not packaged for Debian). It lives in its
// own module so that Consul's large dependency tree never enters meshnet's
// go.mod. testenv builds it once and caches the binary outside the repository.
package main

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/hashicorp/consul/command"
	consulcli "github.com/hashicorp/consul/command/cli"
	"github.com/mitchellh/cli"
)

func main() {
	os.Exit(run())
}

func run() int {
	log.SetOutput(io.Discard)
	ui := &consulcli.BasicUI{BasicUi: cli.BasicUi{Writer: os.Stdout, ErrorWriter: os.Stderr}}
	c := &cli.CLI{
		Name:        "consul",
		Args:        os.Args[1:],
		Commands:    command.RegisteredCommands(ui),
		HelpFunc:    cli.BasicHelpFunc("consul"),
		HelpWriter:  os.Stdout,
		ErrorWriter: os.Stderr,
	}
	code, err := c.Run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "consul: %v\n", err)
		return 1
	}
	return code
}
