package settings

import "strings"

// UnlockCommand is the command line that releases key of the lock name
// in realm and no other, as one can paste it into a shell: the realm unless it is the
// default, and the key by the lease ID that ends it.
func UnlockCommand(realm, name, key string) string {
	cmd := "distlock"
	if realm != defaultPrefix {
		cmd += " --prefix=" + shellWord(realm)
	}
	lease := key[strings.LastIndexByte(key, '/')+1:]
	return cmd + " --lock-name=" + shellWord(name) + " --unlock --holder=" + shellWord(lease)
}

// shellWord is s as one word for a shell: as it is if it is plain,
// else in single quotes.
func shellWord(s string) string {
	plain := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:@%+=,", r))
	}) < 0
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
