package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// keepsOrder names the commands whose arguments after NAME are a command
// line of their own (run, sandbox exec): their flags must come first, as
// with docker run, and nothing after NAME is taken for agentctl's.
var keepsOrder = map[string]bool{"run": true, "exec": true}

// interspersed lets flags follow arguments, as Docker's commands allow
// ("network create multi -d overlay"): urfave/cli, like Go's flag package,
// stops at the first argument, so the flags of the command being run are
// moved before its arguments, with a "--" between them. Everything after
// a "--" given by the user stays an argument.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	flags, commands := app.Flags, app.Commands
	var cmd *cli.Command
	i := 1
	for i < len(args) {
		arg := args[i]
		if arg == "--" {
			return args
		}
		if isFlag(arg) {
			if takesValue(flags, arg) {
				i++
			}
			i++
			continue
		}
		next := findCommand(commands, arg)
		if next == nil {
			break
		}
		cmd, flags, commands = next, next.Flags, next.Subcommands
		i++
		if len(commands) == 0 {
			break
		}
	}
	if cmd == nil || len(cmd.Subcommands) > 0 || keepsOrder[cmd.Name] || i >= len(args) {
		return args
	}

	var flagArgs, plain []string
	rest := args[i:]
	for j := 0; j < len(rest); j++ {
		arg := rest[j]
		switch {
		case arg == "--":
			plain = append(plain, rest[j+1:]...)
			j = len(rest)
		case isFlag(arg):
			flagArgs = append(flagArgs, arg)
			if takesValue(flags, arg) {
				if j+1 == len(rest) {
					// Left last, for the flag package to say it needs a value.
					return append(append([]string{}, args[:i]...), flagArgs...)
				}
				j++
				flagArgs = append(flagArgs, rest[j])
			}
		default:
			plain = append(plain, arg)
		}
	}
	out := append([]string{}, args[:i]...)
	out = append(out, flagArgs...)
	out = append(out, "--")
	return append(out, plain...)
}

// helpTopic turns "help [COMMAND...]" where a command is expected into
// "[COMMAND...] --help", so that "agentctl help network create" shows what
// "agentctl network create --help" does.
func helpTopic(app *cli.App, args []string) []string {
	flags, commands := app.Flags, app.Commands
	for i := 1; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return args
		case isFlag(arg):
			if takesValue(flags, arg) {
				i++
			}
		case arg == "help":
			out := append([]string{}, args[:i]...)
			out = append(out, args[i+1:]...)
			return append(out, "--help")
		default:
			next := findCommand(commands, arg)
			if next == nil || len(next.Subcommands) == 0 {
				return args
			}
			flags, commands = next.Flags, next.Subcommands
		}
	}
	return args
}

func isFlag(arg string) bool {
	return len(arg) > 1 && arg[0] == '-'
}

// takesValue reports whether the flag arg is one of flags that needs a
// value in the next argument (not given as --name=value).
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

func findCommand(commands []*cli.Command, name string) *cli.Command {
	for _, c := range commands {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
