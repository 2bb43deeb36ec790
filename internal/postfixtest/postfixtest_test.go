package postfixtest_test

import (
	"context"
	"testing"

	"github.com/imapbridge/imapbridge/internal/postfixtest"
	"github.com/imapbridge/imapbridge/internal/testtool"
)

// The harness's delivering runs are in lmtpfront (TestPostfix*,
// TestCrashWithPostfix); here, what it refuses.
func TestStartNeedsLMTP(t *testing.T) {
	testtool.Require(t, postfixtest.Available(), postfixtest.InstallCommand)
	_, err := postfixtest.Start(context.Background(), postfixtest.Options{})
	if err == nil || err.Error() != "postfixtest: no LMTP destination" {
		t.Errorf("Start: %v", err)
	}
}
