package server

// WithTurnHook is withTurnHook for the black-box tests.
var WithTurnHook = withTurnHook

// WithPublishHook is withPublishHook for the black-box tests.
var WithPublishHook = withPublishHook
