package redisengine

// Name is "redis": what the hub reports as its engine (broker.Hub.EngineName).
func (e *Engine) Name() string { return "redis" }
