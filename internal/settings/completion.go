package settings

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/tinx/distlock/signals"
)

// completionShells are the shells --completion writes a script for.
var completionShells = []string{"bash", "zsh", "fish"}

// signalNames are the names --kill-signal offers: every signal below the
// real-time ones that has a name.
func signalNames() []string {
	var names []string
	for n := 1; n < 32; n++ {
		name := signals.Name(syscall.Signal(n))
		if _, err := strconv.Atoi(name); err != nil && signals.Ends(syscall.Signal(n)) {
			names = append(names, name)
		}
	}
	return names
}

// helpFlag is --help, which the flag package gives every command: not a
// setting, but the completions and the man page offer it too.
var helpFlag = setting{name: "help", help: "show the modes, the flags and the exit statuses", from: fromCommandLine}

// completedFlags are the flags a completion offers, in the table's order.
// The original tool's names (aliases) still work but are not offered.
func completedFlags() []setting {
	return append(table[:len(table):len(table)], helpFlag)
}

// completionScript is the script --completion prints for shell.
func completionScript(shell string) string {
	switch shell {
	case "bash":
		return bashCompletion()
	case "zsh":
		return zshCompletion()
	case "fish":
		return fishCompletion()
	}
	panic("no completion for shell " + shell) // shellValue lets no other through
}

// flagPatterns is a bash case pattern for the settings for which keep is
// true, each as --name and -name (the flag package takes both).
func flagPatterns(keep func(setting) bool) string {
	var patterns []string
	for _, s := range completedFlags() {
		if keep(s) {
			patterns = append(patterns, "--"+s.name, "-"+s.name)
		}
	}
	return strings.Join(patterns, "|")
}

func bashCompletion() string {
	var all []string
	for _, s := range completedFlags() {
		all = append(all, spelled(s.name))
	}
	all = append(all, "--")

	var b strings.Builder
	b.WriteString(`# bash completion for distlock, written by distlock --completion bash.
# Load it with: source <(distlock --completion bash)

_distlock() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} flag i=1
	# The command starts after --, or at the first word that is neither a
	# flag nor a flag's value; from there on it is the command's completion.
	while ((i < COMP_CWORD)); do
		case ${COMP_WORDS[i]} in
		--)
			_distlock_command $((i + 1))
			return
			;;
`)
	fmt.Fprintf(&b, "\t\t%s)\n", flagPatterns(takesValue))
	b.WriteString(`			# bash splits --flag=value into three words.
			[[ ${COMP_WORDS[i+1]} == = ]] && i=$((i + 1))
			i=$((i + 2))
			continue
			;;
		=) # the = and value of a --switch=value
			i=$((i + 2))
			continue
			;;
		-*) ;;
		*)
			_distlock_command "$i"
			return
			;;
		esac
		i=$((i + 1))
	done

	flag=$prev
	if [[ $cur == = ]]; then
		cur=
	elif [[ $prev == = ]]; then
		flag=${COMP_WORDS[COMP_CWORD-2]}
	fi
	case $flag in
`)
	writeBashValues(&b, all)
	return b.String()
}

// takesValue reports whether the flag takes a value.
func takesValue(s setting) bool { return s.arg != "" }

// writeBashValues writes the part of the bash script that completes a
// flag's value, or else a flag or the command.
func writeBashValues(b *strings.Builder, all []string) {
	for _, s := range completedFlags() {
		if len(s.values) > 0 {
			fmt.Fprintf(b, "\t%s)\n\t\tmapfile -t COMPREPLY < <(compgen -W '%s' -- \"$cur\")\n\t\treturn\n\t\t;;\n",
				flagPatterns(func(t setting) bool { return t.name == s.name }), strings.Join(s.values, " "))
		}
	}
	fmt.Fprintf(b, "\t%s)\n", flagPatterns(func(s setting) bool { return s.arg == "FILE" }))
	b.WriteString(`		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
`)
	fmt.Fprintf(b, "\t%s)\n", flagPatterns(func(s setting) bool { return s.name == "lock-name" }))
	b.WriteString(`		_distlock_lock_names "$cur"
		return
		;;
`)
	fmt.Fprintf(b, "\t%s)\n", flagPatterns(func(s setting) bool {
		return takesValue(s) && s.arg != "FILE" && len(s.values) == 0 && s.name != "lock-name"
	}))
	b.WriteString(`		# A value of the user's own: nothing to offer.
		COMPREPLY=()
		return
		;;
	esac
	case $cur in
	'' | -*)
		mapfile -t COMPREPLY < <(compgen -W '` + strings.Join(all, " ") + `' -- "$cur")
		;;
	*)
		_distlock_command "$COMP_CWORD"
		;;
	esac
}

`)
	b.WriteString(bashHelpers)
	b.WriteString(`complete -F _distlock distlock
`)
}

// bashHelpers are the bash script's functions that complete what the
// flags do not: the command, and the names of the locks.
const bashHelpers = `# _distlock_command completes the command that starts at word $1 as if it
# were typed alone: through bash-completion where it is loaded, else command
# names for the command and file names for its arguments.
_distlock_command() {
	if declare -F _comp_command_offset >/dev/null; then
		_comp_command_offset "$1"
	elif declare -F _command_offset >/dev/null; then
		_command_offset "$1"
	elif (($1 == COMP_CWORD)); then
		mapfile -t COMPREPLY < <(compgen -c -- "${COMP_WORDS[COMP_CWORD]}")
	else
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "${COMP_WORDS[COMP_CWORD]}")
	fi
}

# _distlock_lock_names offers the names that start with $1 among the locks
# held in the realm. distlock finds them with the settings on the line so
# far, as a run would (and the environment and the config file): only
# after --status, --unlock or --lock, within a second, and none at all if
# etcd does not answer.
_distlock_lock_names() {
	local name quoted names
	COMPREPLY=()
	mapfile -t names < <(command distlock ` + lockNamesFlag + ` "${COMP_LINE:0:COMP_POINT}" 2>/dev/null)
	for name in "${names[@]}"; do
		if [[ $name == "$1"* ]]; then
			printf -v quoted '%q' "$name"
			COMPREPLY+=("$quoted")
		fi
	done
}

`

// zshQuote escapes text for a description in brackets inside a
// single-quoted _arguments spec.
func zshQuote(text string) string {
	return strings.NewReplacer(`'`, `'\''`, `\`, `\\`, `[`, `\[`, `]`, `\]`, `:`, `\:`).Replace(text)
}

func zshCompletion() string {
	var modes []string
	for _, s := range table {
		if s.mode {
			modes = append(modes, "--"+s.name)
		}
	}
	var b strings.Builder
	b.WriteString(`#compdef distlock
# zsh completion for distlock, written by distlock --completion zsh.
# Save it as _distlock in a directory of $fpath, or load it with:
# source <(distlock --completion zsh)

_distlock() {
	_arguments -S \
`)
	for _, s := range completedFlags() {
		spec := spelled(s.name)
		switch {
		case s.mode: // one mode per call
			spec = "(" + strings.Join(modes, " ") + ")" + spec
		case s.name == "version" || s.name == "completion" || s.name == helpFlag.name: // nothing else goes with it
			spec = "(- *)" + spec
		}
		if s.arg != "" && len(s.name) > 1 { // --name=VALUE or --name VALUE; -c VALUE
			spec += "="
		}
		spec += "[" + zshQuote(s.help) + "]"
		switch {
		case s.name == "lock-name":
			spec += ":" + s.arg + ":__distlock_lock_names"
		case len(s.values) > 0:
			spec += ":" + s.arg + ":(" + strings.Join(s.values, " ") + ")"
		case s.arg == "FILE":
			spec += ":" + s.arg + ":_files"
		case s.arg != "":
			spec += ":" + s.arg + ": "
		}
		fmt.Fprintf(&b, "\t\t'%s' \\\n", spec)
	}
	b.WriteString(`		'*::command:_normal'
}
`)
	b.WriteString(zshLockNames)
	b.WriteString(`
if [[ $funcstack[1] == _distlock ]]; then
	# Autoloaded from $fpath: this file is the function, and this its call.
	_distlock "$@"
else
	compdef _distlock distlock
fi
`)
	return b.String()
}

// zshLockNames is the zsh script's function that completes --lock-name.
const zshLockNames = `
# The locks held in the realm, as distlock finds them with the settings on
# the line so far (see the bash script).
__distlock_lock_names() {
	local -a names
	names=(${(f)"$(command distlock ` + lockNamesFlag + ` "${(j: :)words[1,CURRENT-1]}" 2>/dev/null)"})
	compadd -a names
}
`

// fishQuote writes text as a single-quoted fish string.
func fishQuote(text string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(text) + "'"
}

func fishCompletion() string {
	var b strings.Builder
	b.WriteString(`# fish completion for distlock, written by distlock --completion fish.
# Save it as ~/.config/fish/completions/distlock.fish, or load it with:
# distlock --completion fish | source

# Flags until --; after it, the command and its own completion.
function __distlock_before_command
    not contains -- -- (commandline -opc)
end

function __distlock_command
    set -l words (commandline -opc)
    set -l after (math (contains -i -- -- $words) + 1)
    set -l line (string escape -- $words[$after..-1]) (commandline -ct)
    complete -C (string join -- ' ' $line)
end

# The locks held in the realm, as distlock finds them with the settings on
# the line so far (see the bash script), each said to be held.
function __distlock_lock_names
    command distlock ` + lockNamesFlag + ` (commandline -cp | string collect) 2>/dev/null |
        string replace -r '$' \t'held in the realm'
end

complete -c distlock -f
`)
	for _, s := range completedFlags() {
		line := "complete -c distlock -n __distlock_before_command -l " + s.name
		if len(s.name) == 1 {
			line = "complete -c distlock -n __distlock_before_command -s " + s.name
		}
		switch {
		case s.name == "lock-name":
			line += " -x -a '(__distlock_lock_names)'"
		case len(s.values) > 0:
			line += " -x -a " + fishQuote(strings.Join(s.values, " "))
		case s.arg == "FILE":
			line += " -r -F"
		case s.arg != "":
			line += " -x"
		}
		b.WriteString(line + " -d " + fishQuote(s.help) + "\n")
	}
	b.WriteString("complete -c distlock -n 'not __distlock_before_command' -x -a '(__distlock_command)'\n")
	return b.String()
}
