package server

// WithTurnHook is withTurnHook for the black-box tests.
var WithTurnHook = withTurnHook
