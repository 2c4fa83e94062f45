-- wrk script: POST /statefun with a rotating set of ToFunction bodies, and count the answers that are not 200.
-- BODIES_DIR names a folder of 000.bin, 001.bin, ... The requests are formatted once, at start, so wrk spends
-- its time sending rather than building strings. At the end it prints "non-200: N" (summed over threads).
local requests = {}

-- Formatted in init(), not at load time: only then has wrk put the Host header (required by HTTP/1.1, and
-- refused without by aiohttp and Node) into wrk.headers.
function init(args)
  local folder = os.getenv("BODIES_DIR") or error("BODIES_DIR is not set")
  for i = 0, 9999 do
    local file = io.open(string.format("%s/%03d.bin", folder, i), "rb")
    if file == nil then break end
    local body = file:read("*a")
    file:close()
    requests[#requests + 1] = wrk.format("POST", "/statefun", {["Content-Type"] = "application/octet-stream"}, body)
  end
  if #requests == 0 then error("no bodies in " .. folder) end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

local sent = 0
non200 = 0

function request()
  sent = sent + 1
  return requests[(sent % #requests) + 1]
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests_done)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("non200") end
  io.write(string.format("non-200: %d\n", total))
end
