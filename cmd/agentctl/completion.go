package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// bashCompletion asks agentctl itself for the words that may come next
// (urfave/cli answers --generate-bash-completion with them).
const bashCompletion = `# agentctl completion for bash: source <(agentctl completion bash)
_agentctl_complete() {
	local cur="${COMP_WORDS[COMP_CWORD]}"
	local words=("${COMP_WORDS[@]:0:COMP_CWORD}")
	if [[ "$cur" == -* ]]; then
		words+=("$cur")
	fi
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$("${words[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o bashdefault -o default -F _agentctl_complete agentctl
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "Print a shell completion script: source <(agentctl completion bash)",
		ArgsUsage: "bash",
		Action: func(c *cli.Context) error {
			if err := exactArgs(c, 1); err != nil {
				return err
			}
			if shell := c.Args().First(); shell != "bash" {
				return fmt.Errorf("no completion for shell %q: only bash", shell)
			}
			_, err := fmt.Fprint(c.App.Writer, bashCompletion)
			return err
		},
	}
}
