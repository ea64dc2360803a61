-- wrk script: POST a distinct case per request (distinct text, so none is linked as a repeat report).
local counter = 0
villages = {}
for county = 1, 2 do
  for town = 1, 4 do
    for village = 1, 4 do
      table.insert(villages, string.format("33990%d%03d%03d", county, town, village))
    end
  end
end
local thread_id = 0
function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end
function init(args)
  math.randomseed(os.time() + id)
  token = args[1] or "bench-clerk-token"
end
request = function()
  counter = counter + 1
  -- random text and village: a realistic spread, and no two requests alike enough to be repeats
  local village = villages[math.random(1, #villages)]
  local body = string.format(
    '{"channel":"hotline","description":"%08x%08x%08x 车辆占用消防通道 %d-%d","location":{"division_code":"%s"}}',
    math.random(0, 2147483647), math.random(0, 2147483647), math.random(0, 2147483647), id, counter, village)
  return wrk.format("POST", "/v1/cases", {["Content-Type"] = "application/json",
                                          ["Authorization"] = "Bearer " .. token}, body)
end
