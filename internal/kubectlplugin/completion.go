package kubectlplugin

import (
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// completeCommand is the hidden command the completion scripts call to list
// the names an argument can take.
const completeCommand = "__complete"

func (r *runner) completion(args []string) error {
	fs := r.flags(false, false)
	pos, err := r.parseN(fs, args, "bash|zsh")
	if err != nil {
		return err
	}
	cmds := strings.Join(Commands, " ")
	switch pos[0] {
	case "bash":
		fmt.Fprintf(r.io.Stdout, bashCompletion, cmds)
	case "zsh":
		fmt.Fprintf(r.io.Stdout, "#compdef kubectl-backstop backstop\nautoload -U +X bashcompinit && bashcompinit\n"+bashCompletion, cmds)
	default:
		return usagef("completion for %q: only bash and zsh", pos[0])
	}
	return nil
}

// bashCompletion completes subcommands, flags and the names of the objects
// each subcommand takes (read from the cluster by __complete).
const bashCompletion = `# kubectl backstop completion: source this file, or put it in your completion directory.
_backstop_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prog="${COMP_WORDS[0]}" sub="" ns=() i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -n|--namespace|--context|--kubeconfig) ns+=("${COMP_WORDS[i]}" "${COMP_WORDS[i+1]}"); i=$((i + 1)) ;;
      -*) ;;
      *) [[ -z "$sub" ]] && sub="${COMP_WORDS[i]}" ;;
    esac
  done
  if [[ -z "$sub" ]]; then
    COMPREPLY=($(compgen -W "%s help" -- "$cur"))
    return
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "-n --namespace --context --kubeconfig -A --all-namespaces -o --output --store --wait --to --yes --safety-backup --lock-timeout --identity-file" -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -W "$("$prog" __complete "$sub" "${ns[@]}" 2>/dev/null)" -- "$cur"))
}
complete -F _backstop_complete kubectl-backstop backstop
`

// complete prints the names the first argument of a subcommand can take.
func (r *runner) complete(ctx context.Context, args []string) error {
	fs := r.flags(false, false)
	pos, err := r.parseN(fs, args, "<command>")
	if err != nil {
		return err
	}
	var lists []client.ObjectList
	switch pos[0] {
	case "backup":
		lists = []client.ObjectList{&backstopv1alpha1.BackupScheduleList{}, &backstopv1alpha1.BackupTargetList{}}
	case "restore", "verify", "decrypt", "manifest":
		lists = []client.ObjectList{&backstopv1alpha1.BackupList{}}
	case "describe", "logs":
		lists = []client.ObjectList{&backstopv1alpha1.BackupList{}, &backstopv1alpha1.RestoreList{}}
	case "suspend", "resume":
		lists = []client.ObjectList{&backstopv1alpha1.BackupScheduleList{}}
	case "completion":
		fmt.Fprintln(r.io.Stdout, "bash\nzsh")
		return nil
	default:
		return nil
	}
	if err := r.connect(); err != nil {
		return err
	}
	for _, l := range lists {
		if err := r.c.List(ctx, l, client.InNamespace(r.ns)); err != nil {
			return err
		}
		items, _ := metaItems(l)
		for _, n := range items {
			fmt.Fprintln(r.io.Stdout, n)
		}
	}
	return nil
}

func metaItems(l client.ObjectList) ([]string, error) {
	var names []string
	switch l := l.(type) {
	case *backstopv1alpha1.BackupScheduleList:
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case *backstopv1alpha1.BackupTargetList:
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case *backstopv1alpha1.BackupList:
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case *backstopv1alpha1.RestoreList:
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	}
	return names, nil
}
