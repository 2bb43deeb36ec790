package pop3front_test

import (
	"go/build"
	"strings"
	"testing"
)

// The package imports the bridge and nothing else of the module (see the
// package documentation): not imapfront, the pop3 client, mboxstore or cmd.
func TestImportsOnlyBridge(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/imapbridge/imapbridge/") && imp != "github.com/imapbridge/imapbridge/bridge" {
			t.Errorf("pop3front imports %s", imp)
		}
	}
}
