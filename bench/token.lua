-- wrk script: POST client-credentials token requests with HTTP Basic.
-- Usage: wrk -s bench/token.lua ... -- <client_id> <client_secret>
local mime = "application/x-www-form-urlencoded"
function init(args)
  local id, secret = args[1], args[2]
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials"
  wrk.headers["Content-Type"] = mime
  wrk.headers["Authorization"] = "Basic " .. base64(id .. ":" .. secret)
end

-- Plain-Lua base64 (wrk embeds LuaJIT without a base64 module).
function base64(data)
  local b = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((data:gsub(".", function(x)
    local r, byte = "", x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

-- No response() callback: calling into Lua per response slows wrk itself down; non-2xx
-- answers are counted by wrk in summary.errors.status.
function done(summary, latency, requests)
  io.write(string.format("non-200 responses: %d\n", summary.errors.status))
  io.write(string.format("p50 %.2f ms, p99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
