package server

// WithTurnHook is withTurnHook for the black-box tests.
var WithTurnHook = withTurnHook

// WithPublishHook is withPublishHook for the black-box tests.
var WithPublishHook = withPublishHook

// ClientKey is clientKey, for tests of addresses no test can connect from.
var ClientKey = clientKey

// WithWriterIdlePeriod is withWriterIdlePeriod for the black-box tests.
var WithWriterIdlePeriod = withWriterIdlePeriod
