package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRetirementKeys(t *testing.T) {
	for _, tc := range []struct {
		file     string
		problems []string
		warnings []string
	}{{
		file: "good_pilot.yaml",
	}, {
		file: "err_pilot.yaml",
		problems: []string{
			`sources[0].mode: invalid value "mirror" (want serve or shadow)`,
			`readiness.quiet_period: must be a positive duration`,
			`admin.token_file: required: admin.listen "0.0.0.0:9154" is not a loopback address, and /status shows every user to whoever reaches it`,
			`users[0].overrides.legacy: source "legacy" does not feed this user (users[0].sources)`,
			`users[0].overrides.nowhere: unknown source "nowhere"`,
			`users[0].overrides.spool.mode: invalid value "shade" (want serve or shadow)`,
			`users[0].overrides.spool.poll_interval: must be a positive duration`,
			`users[0].overrides.spool.delete_after: required with delete_policy after_days`,
			`users[1].overrides.spool.delete_after: set delete_policy after_days with it in the override`,
			`users[2].password_hash: a user without sources logs in at the passthrough POP3 hosts; list the user's sources to give a password here`,
		},
	}, {
		file: "err_short_token.yaml",
		problems: []string{
			`admin.token_file: the token in testdata/retirement/short-token is 5 characters; use at least 16 (e.g. openssl rand -hex 32)`,
		},
	}} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/retirement", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, warnings, err := parseTest(data, "testdata/retirement", nil)
			diffLines(t, "problems", problemsOf(t, err), tc.problems)
			diffLines(t, "warnings", warnings, tc.warnings)
		})
	}
}

func TestRetirementFeedSettings(t *testing.T) {
	data, err := os.ReadFile("testdata/retirement/good_pilot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := parseTest(data, "testdata/retirement", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Readiness.QuietPeriod != 72*time.Hour {
		t.Errorf("quiet_period %v", cfg.Readiness.QuietPeriod)
	}
	if cfg.Admin.Token != "a-token-of-32-characters-exactly" {
		t.Errorf("token not read from token_file (%d bytes)", len(cfg.Admin.Token))
	}
	legacy, pass := cfg.Sources[0], cfg.Sources[1]
	for _, tc := range []struct {
		user User
		src  Source
		want FeedSettings
	}{
		{cfg.Users[0], legacy, FeedSettings{Mode: "serve", DeletePolicy: "after_days", DeleteAfter: 240 * time.Hour, PollInterval: time.Minute, IdlePollInterval: 15 * time.Second}},
		{cfg.Users[1], legacy, FeedSettings{Mode: "shadow", DeletePolicy: "after_sync", PollInterval: 5 * time.Minute, IdlePollInterval: 15 * time.Second}},
		{cfg.Users[2], pass, FeedSettings{Mode: "shadow", DeletePolicy: "keep", PollInterval: time.Minute, IdlePollInterval: 15 * time.Second}},
		{User{Name: "dave"}, pass, FeedSettings{Mode: "serve", DeletePolicy: "keep", PollInterval: time.Minute, IdlePollInterval: 15 * time.Second}},
	} {
		if got := tc.user.Feed(tc.src); got != tc.want {
			t.Errorf("%s from %s: %+v, want %+v", tc.user.Name, tc.src.Name, got, tc.want)
		}
	}
	if got := cfg.SourcesOf(cfg.Users[2]); len(got) != 1 || got[0] != "pass" {
		t.Errorf("SourcesOf(carol) = %q, want [pass]", got)
	}
}
