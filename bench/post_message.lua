-- post_message.lua - wrk script of bench/mail: POST /v1/messages, a
-- 1 KB text mail to OB_RCPTS recipients (default 1).
local n = tonumber(os.getenv("OB_RCPTS") or "1")
local to = {}
for i = 1, n do to[i] = '"r' .. i .. '@example.com"' end
wrk.method = "POST"
wrk.path = "/v1/messages"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"from":"bench@example.com","to":[' .. table.concat(to, ",") ..
    '],"subject":"bench","text":"' .. string.rep("All work and no play. ", 46) .. '"}'
