-- tools/bench/post.lua: wrk script for tools/bench/api.sh. POSTs the JSON
-- body in $BENCH_BODY and prints one machine-readable summary line:
--   BENCH requests=N rps=R non2xx=N errors=N p50_ms=X p99_ms=Y
-- where rps counts 2xx responses only (wrk's own figure counts every status).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"BENCH requests=%d rps=%.1f non2xx=%d errors=%d p50_ms=%.2f p99_ms=%.2f\n",
		summary.requests, (summary.requests - e.status) / (summary.duration / 1e6), e.status,
		e.connect + e.read + e.write + e.timeout,
		latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
