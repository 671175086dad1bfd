module exitgate.dev/bench/loadtools

go 1.26.0
