-- wrk script of bench.harness.poisson: each connection waits an exponential time before each
-- request (mean DELAY_MS), so the requests of all connections arrive as a Poisson process.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
local mean_ms = tonumber(os.getenv("DELAY_MS"))
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  math.randomseed(tonumber(os.getenv("SEED")) * 1000 + id)  -- seeded, one stream per thread
end

function delay()
  return -mean_ms * math.log(1 - math.random())
end
