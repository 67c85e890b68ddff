# tools/bench/common.bash: what the bench parts share, sourced by them
# (tools/bench.sh runs tools/bench/*.sh only, so this is not a part).

# free_port: a loopback TCP port that is free now
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_stack_env BUILD_DIR: tools/stack.sh's environment for a stack under
# a load: BUILD_DIR's binaries, private (loopback) callbacks allowed, and
# the rate limit and the queue bounds off, so that a run measures the path,
# not a bound (tools/bench/limits.sh measures those)
bench_stack_env() {
	export CONSUMA_BUILD_DIR=$1
	export CONSUMA_RATE_LIMIT_REQUESTS=0
	export CONSUMA_ALLOW_PRIVATE_CALLBACKS=true
	export CONSUMA_MAX_QUEUE_SIZE=100000000
	export CONSUMA_MAX_QUEUE_SHARE=1
	export CONSUMA_MAX_PENDING_PER_HOST=0
	export CONSUMA_LOG_LEVEL=${CONSUMA_LOG_LEVEL:-info}
}
