"""Start-up, configuration, Bot/Dispatcher wiring, middlewares, keyboards and texts."""
