-- wrk script: POST client-credentials token requests with HTTP Basic.
-- Usage: wrk -s bench/token.lua ... -- <client_id> <client_secret>
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "base64.lua")
local mime = "application/x-www-form-urlencoded"
function init(args)
  local id, secret = args[1], args[2]
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials"
  wrk.headers["Content-Type"] = mime
  wrk.headers["Authorization"] = "Basic " .. base64(id .. ":" .. secret)
end

-- No response() callback: calling into Lua per response slows wrk itself down; non-2xx
-- answers are counted by wrk in summary.errors.status.
function done(summary, latency, requests)
  io.write(string.format("non-2xx responses: %d\n", summary.errors.status))
  io.write(string.format("p50 %.2f ms, p99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
