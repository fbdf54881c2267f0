package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func init() {
	commands["completion"] = command{"print a shell completion script: multihome completion bash|zsh", cmdCompletion}
}

// flagSpec is one flag as completion offers it.
type flagSpec struct {
	name, help string
	// arg is what the flag's value is: "" for a boolean flag, "file" for
	// a path, "word" for free text, or "a|b|c" for a fixed choice.
	arg string
}

// compSpec is what completes after a command. TestCompletionFlags checks
// it against each command's real flags.
type compSpec struct {
	subs  []string // words expected first (link down|up|drain)
	flags []flagSpec
	files bool // positional arguments are files
}

var apiFlags = []flagSpec{{"api", "API address: unix:/path, host:port or URL", "word"}, {"token", "API bearer token", "word"}}

var completionSpec = map[string]compSpec{
	"run": {flags: []flagSpec{{"config", "config file", "file"}, {"events", "also write link events as JSON lines to this file", "file"},
		{"dry-run", "print the kernel state the config would produce and exit", ""},
		{"strict", "refuse a config group or others can read", ""}}},
	"check-config": {files: true, flags: []flagSpec{{"strict", "fail when the config or a secret file is readable by group or others", ""}}},
	"version":      {},
	"status":       {flags: append([]flagSpec{{"json", "print the API's JSON answer", ""}}, apiFlags...)},
	"events": {flags: append([]flagSpec{{"limit", "how many past events to show", "word"}, {"link", "only this link's events", "word"},
		{"follow", "keep printing new events", ""}, {"f", "short for --follow", ""}, {"json", "one JSON object per event", ""}}, apiFlags...)},
	"link":   {subs: []string{"down", "drain", "up"}, flags: append([]flagSpec{{"reason", "why, for the decision log", "word"}}, apiFlags...)},
	"reload": {flags: apiFlags},
	"audit": {files: true, flags: []flagSpec{{"config", "config file", "file"}, {"discover", "also trace each link's paths", ""},
		{"format", "output format", "text|json|dot|svg"}, {"fail-on", "exit 3 on a finding of this severity or higher", "high|medium|low|info"},
		{"max-ttl", "discovery: highest TTL", "word"}, {"timeout", "discovery: wait per probe", "word"},
		{"method", "discovery probes", "icmp|udp|both"}, {"attempts", "discovery: probes of a silent hop", "word"}}},
	"import": {subs: []string{"mwan3", "pfsense"}, files: true, flags: []flagSpec{{"o", "write the config to this file", "file"},
		{"network", "OpenWrt's /etc/config/network (mwan3 only)", "file"}}},
	"completion": {subs: []string{"bash", "zsh"}},
}

func cmdCompletion(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: multihome completion bash|zsh")
	}
	switch args[0] {
	case "bash":
		return writeBash(os.Stdout)
	case "zsh":
		return writeZsh(os.Stdout)
	}
	return fmt.Errorf("unknown shell %q: want bash or zsh", args[0])
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// writeBash writes a bash completion script: commands, their first
// words, flags (as --name), choices and file names for flag values.
func writeBash(w io.Writer) error {
	var b strings.Builder
	b.WriteString(`# bash completion for multihome. Install:
#   multihome completion bash > /usr/share/bash-completion/completions/multihome
_multihome() {
    local cur prev cmd
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=( $(compgen -W "` + strings.Join(commandNames(), " ") + `" -- "$cur") )
        return
    fi
    cmd="${COMP_WORDS[1]}"
    case "$cmd:${prev#--}" in
`)
	for _, n := range commandNames() {
		for _, f := range completionSpec[n].flags {
			switch {
			case f.arg == "file":
				fmt.Fprintf(&b, "        %s:%s|%s:-%s) COMPREPLY=( $(compgen -f -- \"$cur\") ); return ;;\n", n, f.name, n, f.name)
			case strings.Contains(f.arg, "|"):
				fmt.Fprintf(&b, "        %s:%s|%s:-%s) COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") ); return ;;\n", n, f.name, n, f.name, strings.ReplaceAll(f.arg, "|", " "))
			case f.arg == "word":
				fmt.Fprintf(&b, "        %s:%s|%s:-%s) return ;;\n", n, f.name, n, f.name)
			}
		}
	}
	b.WriteString("    esac\n    case \"$cmd\" in\n")
	for _, n := range commandNames() {
		s := completionSpec[n]
		var fl []string
		for _, f := range s.flags {
			fl = append(fl, "--"+f.name)
		}
		fmt.Fprintf(&b, "        %s)\n", n)
		if len(s.subs) > 0 {
			fmt.Fprintf(&b, "            if [[ $COMP_CWORD -eq 2 ]]; then COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") ); return; fi\n", strings.Join(s.subs, " "))
		}
		fmt.Fprintf(&b, "            if [[ \"$cur\" == -* ]]; then COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") ); return; fi\n", strings.Join(fl, " "))
		if s.files {
			b.WriteString("            COMPREPLY=( $(compgen -f -- \"$cur\") )\n")
		}
		b.WriteString("            ;;\n")
	}
	b.WriteString("    esac\n}\ncomplete -o filenames -F _multihome multihome\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// zq quotes s for a zsh single-quoted word, and escapes what _arguments
// and _describe read specially (':', '[', ']').
func zq(s string) string {
	s = strings.NewReplacer(`'`, `'\''`, ":", `\:`, "[", `\[`, "]", `\]`).Replace(s)
	return s
}

// writeZsh writes a zsh completion function (#compdef) built on
// _describe and _arguments.
func writeZsh(w io.Writer) error {
	var b strings.Builder
	b.WriteString(`#compdef multihome
# zsh completion for multihome. Install:
#   multihome completion zsh > /usr/share/zsh/vendor-completions/_multihome
_multihome() {
    local -a cmds
    cmds=(
`)
	for _, n := range commandNames() {
		summary, _, _ := strings.Cut(commands[n].summary, ":")
		fmt.Fprintf(&b, "        '%s:%s'\n", n, zq(summary))
	}
	b.WriteString(`    )
    if (( CURRENT == 2 )); then
        _describe 'command' cmds
        return
    fi
    case $words[2] in
`)
	for _, n := range commandNames() {
		s := completionSpec[n]
		fmt.Fprintf(&b, "        %s)\n", n)
		if len(s.subs) > 0 {
			fmt.Fprintf(&b, "            if (( CURRENT == 3 )); then compadd -- %s; return; fi\n", strings.Join(s.subs, " "))
		}
		specs := []string{}
		for _, f := range s.flags {
			spec := "'--" + f.name + "[" + zq(f.help) + "]"
			switch {
			case f.arg == "file":
				spec += ":file:_files"
			case strings.Contains(f.arg, "|"):
				spec += ":" + f.name + ":(" + strings.ReplaceAll(f.arg, "|", " ") + ")"
			case f.arg == "word":
				spec += ":" + f.name + ": "
			}
			specs = append(specs, spec+"'")
		}
		if s.files {
			specs = append(specs, "'*:file:_files'")
		}
		if len(specs) > 0 {
			b.WriteString("            shift words; (( CURRENT-- ))\n")
			fmt.Fprintf(&b, "            _arguments -s \\\n                %s\n", strings.Join(specs, " \\\n                "))
		}
		b.WriteString("            ;;\n")
	}
	b.WriteString("    esac\n}\n_multihome \"$@\"\n")
	_, err := io.WriteString(w, b.String())
	return err
}
