package settings

import (
	"errors"
	"strings"
)

// The completion scripts ask distlock itself which lock names to offer
// after --lock-name, with the command line typed so far:
//
//	distlock --complete-lock-names LINE
//
// It is the scripts' question, not a user's: no setting of the table, so
// --help, the man page and the completions leave it out. It is read only
// as the first of exactly two arguments; anywhere else it is an unknown
// flag.
const lockNamesFlag = "--complete-lock-names"

// namesFrom are the settings of a typed line that the question is asked
// with: where etcd is, who distlock is to it, and the realm. Whatever
// the line does not say comes from the environment and the config file,
// as for any run.
var namesFrom = map[string]bool{
	"endpoints": true, "discovery-srv": true, "prefix": true, "config": true, "dial-timeout": true,
	"cacert": true, "cert": true, "key": true, "insecure-skip-tls-verify": true, "user": true, "password": true,
}

// namesFor are the modes after whose --lock-name the names of the locks
// there are worth offering: they name a lock that exists.
var namesFor = map[string]bool{modeStatus: true, modeUnlock: true, modeLock: true}

// errNoNames is a typed line with none of the modes of namesFor.
var errNoNames = errors.New("no mode that names an existing lock")

// lockNamesRun is the Run of the question about the typed line, or an
// error if there is nothing to ask: no mode of namesFor on the line, or
// settings that a run would refuse.
func lockNamesRun(line string) (*Run, error) {
	args, ok := lockNamesArgs(line)
	if !ok {
		return &Run{Mode: ModeLockNames}, errNoNames
	}
	c, err := parseConfig(append(args, "--"+modeList))
	if err != nil {
		return &Run{Mode: ModeLockNames}, err
	}
	r := c.run()
	r.Mode = ModeLockNames
	return r, nil
}

// lockNamesArgs picks the settings of namesFrom out of a typed command
// line, as arguments for parseConfig, and reports whether the line has a
// mode of namesFor. It reads the line as distlock reads its arguments,
// up to -- or the first word that is neither a flag nor a flag's value;
// a flag it does not know is passed over.
func lockNamesArgs(line string) (args []string, ok bool) {
	words := shellWords(line)
	if len(words) > 0 {
		words = words[1:] // distlock itself
	}
	for i := 0; i < len(words); i++ {
		word := words[i]
		if word == "--" || !strings.HasPrefix(word, "-") {
			break
		}
		name, value, inline := strings.Cut(strings.TrimPrefix(word[1:], "-"), "=")
		s, known := settingNamed(name)
		if !known {
			continue
		}
		ok = ok || namesFor[s.name]
		if s.arg != "" && !inline && i+1 < len(words) {
			i++
			value, inline = words[i], true
		}
		switch {
		case !namesFrom[s.name]:
		case inline:
			args = append(args, "--"+s.name+"="+value)
		case s.arg == "":
			args = append(args, "--"+s.name)
		}
	}
	return args, ok
}

// shellWords splits line into words as a POSIX shell splits a simple
// command, and removes the quotes and backslashes, expanding nothing: a
// line being typed, read for its settings. An open quote runs to the end.
func shellWords(line string) []string {
	var words []string
	var word strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote == '\'' && ch == '\'', quote == '"' && ch == '"':
			quote = 0
		case quote == '"' && ch == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0:
			i++
			word.WriteByte(line[i])
		case quote != 0:
			word.WriteByte(ch)
		case ch == '\'' || ch == '"':
			quote, inWord = ch, true
		case ch == '\\' && i+1 < len(line):
			i++
			if line[i] != '\n' { // a backslash and a newline join two lines
				word.WriteByte(line[i])
				inWord = true
			}
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}
