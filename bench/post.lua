-- wrk script of bench.harness.closed_loop: every connection POSTs BODY (JSON) again as soon as
-- its answer comes.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
