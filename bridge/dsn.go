package bridge

import "strings"

// sqliteURIPath escapes a file path for a "file:" SQLite URI: SQLite
// percent-decodes the path and ends it at '?' or '#', and the driver takes
// its own parameters from the first '?'. Unescaped, a data directory such
// as "/srv/mail#2" opened the database "/srv/mail" outside it.
func sqliteURIPath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
}
