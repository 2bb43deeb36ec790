package login

import "github.com/prometheus/client_golang/prometheus"

// NewOAuth2Metrics registers imapbridge_oauth2_refresh_total{result} on
// reg, every result pre-set to 0, and returns what OAuth2Options.Observe
// takes. Its labels are bounded: the result only, never a user.
func NewOAuth2Metrics(reg prometheus.Registerer) (func(result string), error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "imapbridge",
		Name:      "oauth2_refresh_total",
		Help:      "OAuth2 access-token refreshes toward source hosts, by result (success, failure: retried with the poll's backoff, revoked: invalid_grant, polling stopped).",
	}, []string{"result"})
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	for _, r := range OAuth2Results {
		c.WithLabelValues(r)
	}
	return func(result string) { c.WithLabelValues(result).Inc() }, nil
}
