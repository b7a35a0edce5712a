-- wrk script: POST /oauth/introspect as a resource server (HTTP Basic with the collection's
-- introspection credentials), always the same token.
-- Usage: wrk -s bench/introspect.lua ... -- <introspection_client_id> <secret> <token>
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "base64.lua")
function init(args)
  wrk.method = "POST"
  wrk.body = "token=" .. args[3]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = "Basic " .. base64(args[1] .. ":" .. args[2])
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx responses: %d\n", summary.errors.status))
  io.write(string.format("p50 %.2f ms, p99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
